"""Preference tuning with Direct Preference Optimization (DPO), on TRL's DPOTrainer.

Written by Repro from its tested `dpo` recipe, on the libraries a researcher would use: TRL's
DPOTrainer with a peft LoRA adapter (the reference model is the same network with the adapter
off, so no second copy is held). One config block on top, seeded, resumable (the Trainer's
checkpoints), metrics written to a JSON file.

Preference pairs: ``pairs_file`` under $REPRO_DATA (JSON lines with prompt / chosen / rejected)
or, by default, built from the movie-review snippets: for the prompt "Write a positive movie
review:" a clearly positive snippet is *chosen* and a clearly negative one *rejected*.

Loss (Rafailov et al. 2023), the reference model = the starting model:
    L = -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])
Metric: preference accuracy on held-out pairs = share where the model gives the chosen answer
a higher mean per-token log-probability than the rejected one (before and after). Written out
here: TRL's own evaluation reports the implicit reward's accuracy, a different quantity.
Usage: python train.py [--method dpo] [--epochs N] [--out results/NAME] [--train-limit N]
"""
import argparse
import json
import os
import random
import shutil
import time

# ----------------------------------------------------------------------------- config
# REPRO-CONFIG-BEGIN (filled from the plan; every value here is also recorded in metrics.json)
CONFIG = {
    "method": "dpo",
    "model_name": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "dataset": "movieReviewSnippets_GroundTruth.txt",
    "pairs_file": None,
    "prompt": "Write a positive movie review:\n",
    "seed": 42,
    "epochs": 1,
    "batch_size": 8,
    "learning_rate": {"dpo": 5e-4},
    "beta": 0.1,
    "max_length": 64,
    "test_fraction": 0.2,
    "train_limit": None,
    "eval_limit": 200,
    "peft": "lora",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "lora_target_modules": ["q_proj", "v_proj"],
    "grad_clip": 1.0,
}
# REPRO-CONFIG-END
# -----------------------------------------------------------------------------

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig, TaskType  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["dpo"], default=CONFIG["method"])
    p.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    p.add_argument("--train-limit", type=int, default=CONFIG["train_limit"])
    p.add_argument("--out", default=None)
    return p.parse_args()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_pairs(cfg):
    data_dir = os.environ.get("REPRO_DATA", "/opt/repro/data")
    if cfg["pairs_file"]:
        with open(os.path.join(data_dir, cfg["pairs_file"]), encoding="utf-8") as f:
            pairs = [json.loads(line) for line in f if line.strip()]
    else:
        pos, neg = [], []
        with open(os.path.join(data_dir, cfg["dataset"]), encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                try:
                    mean = float(parts[1])
                except (IndexError, ValueError):
                    continue
                if len(parts) >= 3 and mean >= 1.0:
                    pos.append(parts[2].strip())
                elif len(parts) >= 3 and mean <= -1.0:
                    neg.append(parts[2].strip())
        rng = np.random.default_rng(cfg["seed"])
        pos = [pos[i] for i in rng.permutation(len(pos))]
        neg = [neg[i] for i in rng.permutation(len(neg))]
        pairs = [{"prompt": cfg["prompt"], "chosen": c, "rejected": r} for c, r in zip(pos, neg)]
    order = np.random.default_rng(cfg["seed"]).permutation(len(pairs))
    n_test = int(len(pairs) * cfg["test_fraction"])
    return [pairs[i] for i in order[n_test:]], [pairs[i] for i in order[:n_test]]


def load_model(cfg):
    """A GGUF file is de-quantised by transformers (needs the `gguf` package); a directory loads as is."""
    path = os.path.join(os.environ.get("REPRO_MODELS", "/opt/repro/models"), cfg["model_name"])
    if path.endswith(".gguf"):
        folder, name = os.path.split(path)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # transformers de-quantises GGUF weights to float32 on load but keeps its GGUF quantizer
        # attached, and Trainer refuses to train a "quantized" model: the weights are plain floats
        model.hf_quantizer, model.is_quantized = None, False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    else:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model.to(DEVICE)


def sequence_logps(model, tok, prompts, answers, cfg):
    """Sum and mean of log p(answer tokens | prompt), one row per pair (dynamic padding)."""
    ids, masks = [], []
    for p, a in zip(prompts, answers):
        p_ids = tok(p, add_special_tokens=False)["input_ids"]
        a_ids = tok(a + tok.eos_token, add_special_tokens=False)["input_ids"]
        seq = (p_ids + a_ids)[: cfg["max_length"]]
        mask = ([0] * len(p_ids) + [1] * len(a_ids))[: cfg["max_length"]]
        ids.append(seq)
        masks.append(mask)
    width = max(len(s) for s in ids)
    pad = tok.pad_token_id
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in ids], device=DEVICE)
    attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in ids], device=DEVICE)
    answer = torch.tensor([m + [0] * (width - len(m)) for m in masks], device=DEVICE, dtype=torch.float32)
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    logp = torch.gather(F.log_softmax(logits, -1), 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    m = answer[:, 1:]
    total = (logp * m).sum(-1)
    return total, total / m.sum(-1).clamp(min=1)


def batches(data, batch_size):
    for i in range(0, len(data), batch_size):
        yield list(range(i, min(i + batch_size, len(data))))


@torch.no_grad()
def preference_accuracy(model, tok, pairs, cfg):
    model.eval()
    wins = 0
    for idx in batches(pairs, 32):
        chunk = [pairs[i] for i in idx]
        prompts = [p["prompt"] for p in chunk]
        c = sequence_logps(model, tok, prompts, [p["chosen"] for p in chunk], cfg)[1]
        r = sequence_logps(model, tok, prompts, [p["rejected"] for p in chunk], cfg)[1]
        wins += (c > r).sum().item()
    return wins / max(1, len(pairs))


def main():
    args = parse_args()
    cfg = dict(CONFIG, method=args.method, epochs=args.epochs, train_limit=args.train_limit)
    # The submission contract: REPRO_SEED seeds the run; REPRO_SMOKE=1 is a quick run of every code path.
    cfg["seed"] = int(os.environ.get("REPRO_SEED", cfg["seed"]))
    if os.environ.get("REPRO_SMOKE") == "1":
        cfg["epochs"], cfg["train_limit"] = 1, min(cfg["train_limit"] or 64, 64)
    out = args.out or os.path.join("results", cfg["method"])
    os.makedirs(out, exist_ok=True)
    # the sandbox's CPU quota (OMP_NUM_THREADS) when set: more threads than cores only wait
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, os.cpu_count() or 1))
    hf_logging.set_verbosity_error()
    seed_everything(cfg["seed"])
    train, test = load_pairs(cfg)
    if cfg["train_limit"]:
        train = train[: cfg["train_limit"]]
        test = test[: max(32, cfg["train_limit"] // 2)]
    elif cfg["eval_limit"]:
        test = test[: cfg["eval_limit"]]
    print(f"data: {len(train)} train / {len(test)} test preference pairs", flush=True)

    tok, model = load_model(cfg)
    lr = cfg["learning_rate"][cfg["method"]] if isinstance(cfg["learning_rate"], dict) else cfg["learning_rate"]
    trainer_dir = os.path.join(out, "trainer")
    # resume after a crash: the Trainer's last checkpoint (model, optimiser, step) and the
    # before-number measured on the untouched model
    resume = os.path.isdir(trainer_dir) and any(d.startswith("checkpoint-") for d in os.listdir(trainer_dir))
    before_path = os.path.join(out, "before.json")
    if resume and os.path.exists(before_path):
        with open(before_path) as f:
            before = json.load(f)["preference_accuracy"]
        print("resuming from the last checkpoint", flush=True)
    else:
        before = preference_accuracy(model, tok, test, cfg)
        with open(before_path, "w") as f:
            json.dump({"preference_accuracy": before}, f)
        print(f"preference accuracy before tuning: {before:.4f}", flush=True)

    args = DPOConfig(
        output_dir=trainer_dir, num_train_epochs=cfg["epochs"], per_device_train_batch_size=cfg["batch_size"],
        learning_rate=lr, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=cfg["grad_clip"],
        beta=cfg["beta"], max_length=cfg["max_length"], seed=cfg["seed"], logging_steps=1,
        save_strategy="epoch", save_total_limit=1, report_to=[], disable_tqdm=True, use_cpu=DEVICE == "cpu")
    lora = None
    if cfg["peft"] == "lora":
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
                          lora_dropout=cfg["lora_dropout"], target_modules=cfg["lora_target_modules"])
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(train), processing_class=tok,
                         peft_config=lora)
    model = trainer.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    t0 = time.time()
    trainer.train(resume_from_checkpoint=True if resume else None)
    history = [{"step": h["step"], "loss": round(h["loss"], 5), "reward_margin": round(h.get("rewards/margins", 0.0), 5)}
               for h in trainer.state.log_history if "loss" in h and "step" in h]
    for h in history:
        print(f"step {h['step']} dpo loss {h['loss']:.4f} reward margin {h['reward_margin']:.3f}", flush=True)
    after = preference_accuracy(model, tok, test, cfg)
    metrics = {
        "method": cfg["method"],
        "before": {"preference_accuracy": round(before, 4)},
        "metrics": {"preference_accuracy": round(after, 4)},
        "final_loss": history[-1]["loss"] if history else None,
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(time.time() - t0, 1),
        "n_train": len(train),
        "n_test": len(test),
        "curves": {"loss": [[h["step"], h["loss"]] for h in history],
                   "reward_margin": [[h["step"], h["reward_margin"]] for h in history]},
        "device": DEVICE,
        "deviations": [],
        "config": cfg,
    }
    tmp = os.path.join(out, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=2)
    os.replace(tmp, os.path.join(out, "metrics.json"))
    shutil.rmtree(trainer_dir, ignore_errors=True)  # checkpoints are for resuming only
    os.remove(before_path)
    print(f"preference accuracy after tuning ({cfg['method']}): {after:.4f}", flush=True)


if __name__ == "__main__":
    main()
