"""Self-supervised causal-LM fine-tuning (next-token prediction) of a small decoder, on TRL's SFTTrainer.

Written by Repro from its tested `sft` recipe, on the libraries a researcher would use: TRL's
SFTTrainer (dynamic padding, EOS appended, padding never counts in the loss) with a peft LoRA
adapter. One config block on top, seeded, resumable (the Trainer's checkpoints every
``checkpoint_every`` steps), metrics written to a JSON file. The base model may be a GGUF file (loaded with
transformers' ``gguf_file=``: de-quantised to float32) or a Hugging Face model directory.
Metric: perplexity on held-out sentences, before and after (lower is better).
Usage: python train.py [--method sft] [--epochs N] [--out results/NAME] [--train-limit N]
"""
import argparse
import json
import math
import os
import random
import shutil
import time

# ----------------------------------------------------------------------------- config
# REPRO-CONFIG-BEGIN (filled from the plan; every value here is also recorded in metrics.json)
CONFIG = {
    "method": "sft",
    "model_name": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "dataset": "movieReviewSnippets_GroundTruth.txt",
    "seed": 42,
    "epochs": 1,
    "batch_size": 8,
    "learning_rate": {"sft": 5e-5},
    "weight_decay": 0.0,
    "max_length": 48,
    "test_fraction": 0.2,
    "train_limit": None,
    "eval_limit": 200,
    "peft": "lora",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_target_modules": ["q_proj", "v_proj"],
    "grad_clip": 1.0,
    "checkpoint_every": 50,
}
# REPRO-CONFIG-END
# -----------------------------------------------------------------------------

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig, TaskType  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["sft"], default=CONFIG["method"])
    p.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    p.add_argument("--train-limit", type=int, default=CONFIG["train_limit"])
    p.add_argument("--out", default=None)
    return p.parse_args()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_sentences(path, test_fraction, seed):
    """Tab-separated: id, mean rating, sentence. Only the text is used (self-supervised)."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and parts[2].strip():
                rows.append(parts[2].strip())
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * test_fraction)
    return [rows[i] for i in order[n_test:]], [rows[i] for i in order[:n_test]]


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
    tok.padding_side = "right"
    return tok, model.to(DEVICE)


def encode(tok, texts, cfg):
    # Dynamic padding: pad to the longest text in the batch. Padding never counts in the loss.
    enc = tok([t + tok.eos_token for t in texts], padding=True, truncation=True,
              max_length=cfg["max_length"], return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    return enc.to(DEVICE), labels.to(DEVICE)


def batches(data, batch_size):
    for i in range(0, len(data), batch_size):
        yield data[i : i + batch_size]


@torch.no_grad()
def perplexity(model, tok, data, cfg):
    model.eval()
    nll, count = 0.0, 0
    for texts in batches(data, 32):
        enc, labels = encode(tok, texts, cfg)
        logits = model(**enc).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        nll += loss.item()
        count += (target != -100).sum().item()
    return math.exp(nll / max(1, count))


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
    data_path = os.path.join(os.environ.get("REPRO_DATA", "/opt/repro/data"), cfg["dataset"])
    train, test = load_sentences(data_path, cfg["test_fraction"], cfg["seed"])
    if cfg["train_limit"]:
        train = train[: cfg["train_limit"]]
    test = test[: cfg["eval_limit"]] if cfg["eval_limit"] else test
    if cfg["train_limit"]:
        test = test[: max(32, cfg["train_limit"] // 4)]
    print(f"data: {len(train)} train / {len(test)} test sentences", flush=True)

    tok, model = load_model(cfg)
    lr = cfg["learning_rate"][cfg["method"]] if isinstance(cfg["learning_rate"], dict) else cfg["learning_rate"]
    trainer_dir = os.path.join(out, "trainer")
    # resume after a crash: the Trainer's last checkpoint (weights, optimiser, step, log) and the
    # before-number measured on the untouched model
    resume = os.path.isdir(trainer_dir) and any(d.startswith("checkpoint-") for d in os.listdir(trainer_dir))
    before_path = os.path.join(out, "before.json")
    if resume and os.path.exists(before_path):
        with open(before_path) as f:
            before = json.load(f)["perplexity"]
        print("resuming from the last checkpoint", flush=True)
    else:
        before = perplexity(model, tok, test, cfg)
        with open(before_path, "w") as f:
            json.dump({"perplexity": before}, f)
        print(f"perplexity before fine-tuning: {before:.3f}", flush=True)

    args = SFTConfig(
        output_dir=trainer_dir, num_train_epochs=cfg["epochs"], per_device_train_batch_size=cfg["batch_size"],
        learning_rate=lr, lr_scheduler_type="constant", weight_decay=cfg["weight_decay"],
        max_grad_norm=cfg["grad_clip"], max_length=cfg["max_length"], packing=False, dataset_text_field="text",
        seed=cfg["seed"], logging_steps=1, save_strategy="steps" if cfg["checkpoint_every"] else "no",
        save_steps=cfg["checkpoint_every"] or 500, save_total_limit=1, report_to=[], disable_tqdm=True,
        use_cpu=DEVICE == "cpu")
    lora = None
    if cfg["peft"] == "lora":
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
                          lora_dropout=cfg["lora_dropout"], target_modules=cfg["lora_target_modules"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"text": t} for t in train]),
                         processing_class=tok, peft_config=lora)
    model = trainer.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    t0 = time.time()
    trainer.train(resume_from_checkpoint=True if resume else None)
    history = [{"step": h["step"], "loss": round(h["loss"], 5)} for h in trainer.state.log_history
               if "loss" in h and "step" in h]
    for h in history[4::5] + history[-1:]:
        print(f"step {h['step']}/{trainer.state.max_steps} loss {h['loss']:.4f}", flush=True)
    after = perplexity(model, tok, test, cfg)
    metrics = {
        "method": cfg["method"],
        "higher_is_better": False,
        "before": {"perplexity": round(before, 4)},
        "metrics": {"perplexity": round(after, 4)},
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(time.time() - t0, 1),
        "n_train": len(train),
        "n_test": len(test),
        "curves": {"loss": [[h["step"], h["loss"]] for h in history]},
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
    print(f"perplexity after fine-tuning ({cfg['method']}): {after:.3f}", flush=True)


if __name__ == "__main__":
    main()
