"""Fine-tune a pre-trained encoder for binary sentence classification.

Written by Repro from its tested `sequence-classification` recipe. nanoGPT style: one config
block on top, seeded, resumable (a checkpoint per epoch), metrics written to a JSON file.
Usage: python train.py [--method full|head|lora] [--epochs N] [--out results/NAME] [--train-limit N]
"""
import argparse
import json
import os
import random
import time

# ----------------------------------------------------------------------------- config
# REPRO-CONFIG-BEGIN (filled from the plan; every value here is also recorded in metrics.json)
CONFIG = {'method': 'head',
 'model_name': 'all-MiniLM-L6-v2',
 'dataset': 'movieReviewSnippets_GroundTruth.txt',
 'seed': 7,
 'epochs': 1,
 'batch_size': 32,
 'learning_rate': {'full': 5e-05, 'head': 0.002, 'lora': 0.001},
 'weight_decay': 0.01,
 'warmup_ratio': 0.0,
 'max_length': 64,
 'test_fraction': 0.2,
 'train_limit': None,
 'lora_r': 8,
 'lora_alpha': 16,
 'lora_dropout': 0.1,
 'lora_target_modules': ['query', 'value']}
# REPRO-CONFIG-END
# -----------------------------------------------------------------------------

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["full", "head", "lora"], default=CONFIG["method"])
    p.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    p.add_argument("--train-limit", type=int, default=CONFIG["train_limit"])
    p.add_argument("--out", default=None)
    return p.parse_args()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data(path, test_fraction, seed):
    """Tab-separated: id, mean human rating, sentence. Label = sign of the mean; zeros dropped."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            try:
                mean = float(parts[1])
            except ValueError:
                continue
            if mean == 0:
                continue
            rows.append((parts[2], 1 if mean > 0 else 0))
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * test_fraction)
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    return train, test


def batches(data, batch_size, shuffle, seed):
    idx = list(range(len(data)))
    if shuffle:
        random.Random(seed).shuffle(idx)
    for i in range(0, len(idx), batch_size):
        chunk = [data[j] for j in idx[i : i + batch_size]]
        yield [t for t, _ in chunk], torch.tensor([y for _, y in chunk])


@torch.no_grad()
def evaluate(model, tok, data, cfg):
    model.eval()
    correct = 0
    for texts, labels in batches(data, 128, False, 0):
        # Dynamic padding: pad to the longest sentence in the batch, not to max_length.
        enc = tok(texts, padding=True, truncation=True, max_length=cfg["max_length"], return_tensors="pt")
        correct += (model(**enc).logits.argmax(-1) == labels).sum().item()
    return correct / max(1, len(data))


def build_model(method, cfg, model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    if method == "head":
        # Transfer learning: freeze the encoder, train only the pooler and classifier head.
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(("classifier", "bert.pooler"))
    elif method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lcfg = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg["lora_r"],
            lora_alpha=cfg["lora_alpha"],
            lora_dropout=cfg["lora_dropout"],
            target_modules=cfg["lora_target_modules"],
            modules_to_save=["classifier", "pooler"],
        )
        model = get_peft_model(model, lcfg)
    return model


def main():
    args = parse_args()
    cfg = dict(CONFIG, method=args.method, epochs=args.epochs, train_limit=args.train_limit)
    out = args.out or os.path.join("results", cfg["method"])
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    seed_everything(cfg["seed"])
    model_dir = os.path.join(os.environ.get("REPRO_MODELS", "/opt/repro/models"), cfg["model_name"])
    data_path = os.path.join(os.environ.get("REPRO_DATA", "/opt/repro/data"), cfg["dataset"])
    train, test = load_data(data_path, cfg["test_fraction"], cfg["seed"])
    if cfg["train_limit"]:
        train = train[: cfg["train_limit"]]
        test = test[: max(50, cfg["train_limit"] // 4)]
    print(f"data: {len(train)} train / {len(test)} test sentences", flush=True)

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = build_model(cfg["method"], cfg, model_dir)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    lr = cfg["learning_rate"][cfg["method"]] if isinstance(cfg["learning_rate"], dict) else cfg["learning_rate"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=cfg["weight_decay"])
    steps_total = cfg["epochs"] * ((len(train) + cfg["batch_size"] - 1) // cfg["batch_size"])
    warmup = int(steps_total * cfg["warmup_ratio"])
    sched = None

    ckpt_path = os.path.join(out, "checkpoint.pt")
    start_epoch, history, before = 0, [], None
    if os.path.exists(ckpt_path):  # resume after a crash
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, history, before = state["epoch"], state["history"], state["before"]
        print(f"resumed from epoch {start_epoch}", flush=True)
    if before is None:
        before = evaluate(model, tok, test, cfg)
        print(f"accuracy before fine-tuning: {before:.4f}", flush=True)

    t0 = time.time()
    step = len(history)
    for epoch in range(start_epoch, cfg["epochs"]):
        model.train()
        for texts, labels in batches(train, cfg["batch_size"], True, cfg["seed"] + epoch):
            enc = tok(texts, padding=True, truncation=True, max_length=cfg["max_length"], return_tensors="pt")
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 20 == 0:
                history.append({"step": step, "epoch": epoch, "loss": round(loss.item(), 5)})
                print(f"epoch {epoch} step {step}/{steps_total} loss {loss.item():.4f}", flush=True)
        acc = evaluate(model, tok, test, cfg)
        print(f"epoch {epoch} test accuracy {acc:.4f}", flush=True)
        torch.save(
            {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "epoch": epoch + 1, "history": history, "before": before},
            ckpt_path,
        )
    after = evaluate(model, tok, test, cfg)
    metrics = {
        "method": cfg["method"],
        "metric": "accuracy",
        "before": {"accuracy": round(before, 4)},
        "after": {"accuracy": round(after, 4)},
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(time.time() - t0, 1),
        "n_train": len(train),
        "n_test": len(test),
        "history": history,
        "config": cfg,
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    os.remove(ckpt_path)  # the run finished: the checkpoint is no longer needed (and is large)
    print(f"accuracy after fine-tuning ({cfg['method']}): {after:.4f}", flush=True)


if __name__ == "__main__":
    main()
