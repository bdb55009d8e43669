"""LoRA on the query and value projections only; macro-F1 on long movie-review snippets (a
length-bucketed split) and on Amazon product-review snippets (out of domain).

Written without a recipe: data loading, the split, the LoRA model, training and the metric are all
here. REPRO_SEED seeds everything; REPRO_SMOKE=1 runs a few dozen sentences end to end.
"""
import json
import os
import random
import sys
import time

import numpy as np
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

CONFIG = {"model": "all-MiniLM-L6-v2", "short_words": 18, "n_train": 1600, "n_test": 400, "epochs": 2,
          "batch_size": 32, "lr": 3e-3, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "max_length": 48}


def read(name):
    """Hutto & Gilbert's files: id <tab> mean rating <tab> sentence; label = sign of the mean."""
    rows = []
    with open(os.path.join(os.environ["REPRO_DATA"], name), encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            try:
                mean = float(parts[1])
            except (IndexError, ValueError):
                continue
            if mean != 0:
                rows.append((parts[2], int(mean > 0)))
    return rows


def macro_f1(pred, gold):
    scores = []
    for c in (0, 1):
        tp = sum(p == c and g == c for p, g in zip(pred, gold))
        fp = sum(p == c and g != c for p, g in zip(pred, gold))
        fn = sum(p != c and g == c for p, g in zip(pred, gold))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


@torch.no_grad()
def evaluate(model, tok, rows, cfg):
    model.eval()
    pred = []
    for i in range(0, len(rows), 64):
        enc = tok([t for t, _ in rows[i:i + 64]], padding=True, truncation=True, max_length=cfg["max_length"],
                  return_tensors="pt")
        pred += model(**enc).logits.argmax(-1).tolist()
    return macro_f1(pred, [y for _, y in rows])


def main():
    cfg = dict(CONFIG)
    seed = int(os.environ.get("REPRO_SEED", "13"))
    if os.environ.get("REPRO_SMOKE") == "1":
        cfg.update(n_train=48, n_test=32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    movie = read("movieReviewSnippets_GroundTruth.txt")
    random.Random(seed).shuffle(movie)
    # length-bucketed split: train on short sentences, test on long ones (a length shift)
    short = [r for r in movie if len(r[0].split()) <= cfg["short_words"]]
    long_ = [r for r in movie if len(r[0].split()) > cfg["short_words"]]
    amazon = read("amazonReviewSnippets_GroundTruth.txt")
    random.Random(seed).shuffle(amazon)
    train, test_movie, test_amazon = short[:cfg["n_train"]], long_[:cfg["n_test"]], amazon[:cfg["n_test"]]
    model_dir = os.path.join(os.environ["REPRO_MODELS"], cfg["model"])
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
                      lora_dropout=cfg["lora_dropout"], target_modules=["query", "value"])
    model = get_peft_model(base, lora)
    before = {"macro_f1_movie": evaluate(model, tok, test_movie, cfg), "macro_f1_amazon": evaluate(model, tok, test_amazon, cfg)}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"])
    t0, losses, step = time.time(), [], 0
    for epoch in range(cfg["epochs"]):
        model.train()
        order = list(range(len(train)))
        random.Random(seed + epoch).shuffle(order)
        for i in range(0, len(order), cfg["batch_size"]):
            batch = [train[j] for j in order[i:i + cfg["batch_size"]]]
            enc = tok([t for t, _ in batch], padding=True, truncation=True, max_length=cfg["max_length"],
                      return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([y for _, y in batch])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1
            losses.append([step, round(loss.item(), 5)])
    after = {"macro_f1_movie": evaluate(model, tok, test_movie, cfg), "macro_f1_amazon": evaluate(model, tok, test_amazon, cfg)}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = os.path.join("results", sys.argv[1] if len(sys.argv) > 1 else "lora")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"metrics": {k: round(v, 4) for k, v in after.items()},
                   "before": {k: round(v, 4) for k, v in before.items()}, "curves": {"loss": losses},
                   "trainable_params": trainable, "total_params": sum(p.numel() for p in model.parameters()),
                   "train_seconds": round(time.time() - t0, 1), "n_train": len(train), "seed": seed, "config": cfg},
                  f, indent=2)
    print(f"macro-F1 movie {after['macro_f1_movie']:.4f} (before {before['macro_f1_movie']:.4f}), "
          f"amazon {after['macro_f1_amazon']:.4f} (before {before['macro_f1_amazon']:.4f})")


if __name__ == "__main__":
    main()
