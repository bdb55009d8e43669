"""Preference tuning with Direct Preference Optimization (DPO), the loss written out in torch.

Written by Repro from its tested `dpo` recipe. nanoGPT style: one config block on top, seeded,
resumable checkpoint, metrics written to a JSON file.

Preference pairs: ``pairs_file`` under $REPRO_DATA (JSON lines with prompt / chosen / rejected)
or, by default, built from the movie-review snippets: for the prompt "Write a positive movie
review:" a clearly positive snippet is *chosen* and a clearly negative one *rejected*.

Loss (Rafailov et al. 2023), with the reference model = the starting model, whose
log-probabilities are computed once before training:
    L = -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])
Metric: preference accuracy on held-out pairs = share where the model gives the chosen answer
a higher mean per-token log-probability than the rejected one (before and after).
Usage: python train.py [--method dpo] [--epochs N] [--out results/NAME] [--train-limit N]
"""
import argparse
import json
import os
import random
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
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

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
    else:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg["peft"] == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
            lora_dropout=cfg["lora_dropout"], target_modules=cfg["lora_target_modules"]))
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


def batches(data, batch_size, shuffle, seed):
    idx = list(range(len(data)))
    if shuffle:
        random.Random(seed).shuffle(idx)
    for i in range(0, len(idx), batch_size):
        yield idx[i : i + batch_size]


@torch.no_grad()
def reference_logps(model, tok, pairs, cfg):
    model.eval()
    chosen, rejected = torch.zeros(len(pairs)), torch.zeros(len(pairs))
    for idx in batches(pairs, 32, False, 0):
        chunk = [pairs[i] for i in idx]
        prompts = [p["prompt"] for p in chunk]
        chosen[idx] = sequence_logps(model, tok, prompts, [p["chosen"] for p in chunk], cfg)[0].cpu()
        rejected[idx] = sequence_logps(model, tok, prompts, [p["rejected"] for p in chunk], cfg)[0].cpu()
    return chosen, rejected


@torch.no_grad()
def preference_accuracy(model, tok, pairs, cfg):
    model.eval()
    wins = 0
    for idx in batches(pairs, 32, False, 0):
        chunk = [pairs[i] for i in idx]
        prompts = [p["prompt"] for p in chunk]
        c = sequence_logps(model, tok, prompts, [p["chosen"] for p in chunk], cfg)[1]
        r = sequence_logps(model, tok, prompts, [p["rejected"] for p in chunk], cfg)[1]
        wins += (c > r).sum().item()
    return wins / max(1, len(pairs))


def trainable_state(model):
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


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
    seed_everything(cfg["seed"])
    train, test = load_pairs(cfg)
    if cfg["train_limit"]:
        train = train[: cfg["train_limit"]]
        test = test[: max(32, cfg["train_limit"] // 2)]
    elif cfg["eval_limit"]:
        test = test[: cfg["eval_limit"]]
    print(f"data: {len(train)} train / {len(test)} test preference pairs", flush=True)

    tok, model = load_model(cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    lr = cfg["learning_rate"][cfg["method"]] if isinstance(cfg["learning_rate"], dict) else cfg["learning_rate"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    ckpt_path = os.path.join(out, "checkpoint.pt")
    if os.path.exists(ckpt_path):  # resume after a crash
        state = torch.load(ckpt_path, weights_only=False, map_location=DEVICE)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        epoch0, history, before = state["epoch"], state["history"], state["before"]
        ref_c, ref_r = state["ref_chosen"], state["ref_rejected"]
        print(f"resumed from epoch {epoch0}", flush=True)
    else:
        epoch0, history = 0, []
        before = preference_accuracy(model, tok, test, cfg)
        print(f"preference accuracy before tuning: {before:.4f}", flush=True)
        ref_c, ref_r = reference_logps(model, tok, train, cfg)  # the reference model = the start

    t0 = time.time()
    step = len(history)
    for epoch in range(epoch0, cfg["epochs"]):
        model.train()
        for idx in batches(train, cfg["batch_size"], True, cfg["seed"] + epoch):
            chunk = [train[i] for i in idx]
            prompts = [p["prompt"] for p in chunk]
            pc = sequence_logps(model, tok, prompts, [p["chosen"] for p in chunk], cfg)[0]
            pr = sequence_logps(model, tok, prompts, [p["rejected"] for p in chunk], cfg)[0]
            margin = (pc - ref_c[idx].to(DEVICE)) - (pr - ref_r[idx].to(DEVICE))
            loss = -F.logsigmoid(cfg["beta"] * margin).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg["grad_clip"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            history.append({"step": step, "epoch": epoch, "loss": round(loss.item(), 5),
                            "reward_margin": round(cfg["beta"] * margin.mean().item(), 5)})
            print(f"epoch {epoch} step {step} dpo loss {loss.item():.4f} margin {margin.mean().item():.3f}", flush=True)
        torch.save({"model": trainable_state(model), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "history": history, "before": before, "ref_chosen": ref_c, "ref_rejected": ref_r},
                   ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
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
    os.remove(ckpt_path)
    print(f"preference accuracy after tuning ({cfg['method']}): {after:.4f}", flush=True)


if __name__ == "__main__":
    main()
