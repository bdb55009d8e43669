"""Fine-tune a pre-trained encoder for binary sentence classification, on transformers' Trainer.

Written by Repro from its tested `sequence-classification` recipe, on the libraries a researcher
would use: transformers' Trainer (AdamW, linear warmup and decay, dynamic padding by
DataCollatorWithPadding, a checkpoint per epoch to resume from) with peft for LoRA / QLoRA. One
config block on top, seeded, metrics written to a JSON file.
Usage: python train.py [--method full|head|lora|qlora] [--epochs N] [--out results/NAME] [--train-limit N]
"""
import argparse
import json
import os
import random
import shutil
import time

# ----------------------------------------------------------------------------- config
# REPRO-CONFIG-BEGIN (filled from the plan; every value here is also recorded in metrics.json)
CONFIG = {'method': 'head',
 'model_name': 'all-MiniLM-L6-v2',
 'dataset': 'movieReviewSnippets_GroundTruth.txt',
 'seed': 42,
 'epochs': 1,
 'batch_size': 32,
 'learning_rate': {'full': 5e-05, 'head': 0.002, 'lora': 0.001},
 'weight_decay': 0.01,
 'warmup_ratio': 0.06,
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
from datasets import Dataset  # noqa: E402
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,  # noqa: E402
                          Trainer, TrainingArguments)
from transformers.utils import logging as hf_logging  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["full", "head", "lora", "qlora"], default=CONFIG["method"])
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


TEXT_COLUMNS = ("sentence", "text", "review", "content", "document")


def load_hub_data(name, config, test_fraction, seed):
    """A Hugging Face dataset by its Hub name (served offline from the broker's cache): the
    first text-like column and `label`; its test split (else validation, else a held-out share)."""
    import datasets

    ds = datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
    text_col = next(c for c in TEXT_COLUMNS if c in ds["train"].column_names)

    def rows(split):
        return [(t, int(y)) for t, y in zip(split[text_col], split["label"]) if int(y) >= 0]  # -1 = unlabelled

    held = next((s for s in ("test", "validation") if s in ds and min(ds[s]["label"]) >= 0), None)
    if held:
        return rows(ds["train"]), rows(ds[held])
    data = rows(ds["train"])
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = int(len(data) * test_fraction)
    return [data[i] for i in order[n_test:]], [data[i] for i in order[:n_test]]


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def tokenized(tok, rows, cfg):
    """Token ids without padding: the collator pads each batch to its longest sentence (dynamic padding)."""
    enc = tok([t for t, _ in rows], truncation=True, max_length=cfg["max_length"])
    return Dataset.from_dict({**enc, "labels": [y for _, y in rows]})


def accuracy(pred):
    return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}


def qlora_available():
    """4-bit NF4 needs bitsandbytes' CUDA kernels."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False, "bitsandbytes is not installed"
    return True, ""


def build_model(method, cfg, model_dir, deviations):
    if method == "qlora":
        ok, why = qlora_available()
        if ok:
            from peft import prepare_model_for_kbit_training
            from transformers import BitsAndBytesConfig

            bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                     bnb_4bit_compute_dtype=torch.bfloat16)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2, quantization_config=bnb)
            model = prepare_model_for_kbit_training(model)
            return _lora(model, cfg)
        print(f"QLoRA: {why}; training LoRA on the full-precision model instead (recorded as a deviation)", flush=True)
        deviations.append({"what": "quantisation", "paper": "4-bit NF4 + LoRA", "ours": "LoRA, full precision",
                           "reason": why})
        method = "lora"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    if method == "head":
        # Transfer learning: freeze the encoder, train only the pooler and classifier head.
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(("classifier", "bert.pooler"))
    elif method == "lora":
        model = _lora(model, cfg)
    return model.to(DEVICE)


def _lora(model, cfg):
    from peft import LoraConfig, TaskType, get_peft_model

    lcfg = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg["lora_r"],
        lora_alpha=cfg["lora_alpha"],
        lora_dropout=cfg["lora_dropout"],
        target_modules=cfg["lora_target_modules"],
        modules_to_save=["classifier", "pooler"],
    )
    return get_peft_model(model, lcfg)


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
    # a bundled asset by file name, else the paper's own by its Hub name (the broker's offline cache)
    model_dir = os.path.join(os.environ.get("REPRO_MODELS", "/opt/repro/models"), cfg["model_name"])
    model_dir = model_dir if os.path.isdir(model_dir) else cfg["model_name"]
    data_path = os.path.join(os.environ.get("REPRO_DATA", "/opt/repro/data"), cfg["dataset"])
    if os.path.isfile(data_path):
        train, test = load_data(data_path, cfg["test_fraction"], cfg["seed"])
    else:
        train, test = load_hub_data(cfg["dataset"], cfg["dataset_config"], cfg["test_fraction"], cfg["seed"])
    if cfg["train_limit"]:
        train = train[: cfg["train_limit"]]
        test = test[: max(50, cfg["train_limit"] // 4)]
    print(f"data: {len(train)} train / {len(test)} test sentences", flush=True)

    tok = AutoTokenizer.from_pretrained(model_dir)
    deviations = []
    model = build_model(cfg["method"], cfg, model_dir, deviations)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    lr = cfg["learning_rate"][cfg["method"]] if isinstance(cfg["learning_rate"], dict) else cfg["learning_rate"]
    trainer_dir = os.path.join(out, "trainer")
    args = TrainingArguments(
        output_dir=trainer_dir, num_train_epochs=cfg["epochs"], per_device_train_batch_size=cfg["batch_size"],
        per_device_eval_batch_size=128, learning_rate=lr, weight_decay=cfg["weight_decay"],
        lr_scheduler_type="linear", warmup_steps=cfg["warmup_ratio"],  # a float below 1: a share of the steps
        seed=cfg["seed"], eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, logging_steps=20,
        label_names=["labels"],  # a peft model's forward hides its label argument from the Trainer
        report_to=[], disable_tqdm=True, use_cpu=DEVICE == "cpu")
    trainer = Trainer(model=model, args=args, train_dataset=tokenized(tok, train, cfg),
                      eval_dataset=tokenized(tok, test, cfg), data_collator=DataCollatorWithPadding(tok),
                      compute_metrics=accuracy)
    # resume after a crash: the Trainer's last epoch checkpoint (weights, optimiser, scheduler, step,
    # log) and the before-number measured on the untouched model
    resume = os.path.isdir(trainer_dir) and any(d.startswith("checkpoint-") for d in os.listdir(trainer_dir))
    before_path = os.path.join(out, "before.json")
    if resume and os.path.exists(before_path):
        with open(before_path) as f:
            before = json.load(f)["accuracy"]
        print("resuming from the last checkpoint", flush=True)
    else:
        before = trainer.evaluate()["eval_accuracy"]
        with open(before_path, "w") as f:
            json.dump({"accuracy": before}, f)
        print(f"accuracy before fine-tuning: {before:.4f}", flush=True)

    t0 = time.time()
    trainer.train(resume_from_checkpoint=True if resume else None)
    log = trainer.state.log_history
    history = [{"step": h["step"], "epoch": int(h.get("epoch", 1) - 1e-9), "loss": round(h["loss"], 5)}
               for h in log if "loss" in h and "step" in h]
    for h in history:
        print(f"epoch {h['epoch']} step {h['step']}/{trainer.state.max_steps} loss {h['loss']:.4f}", flush=True)
    evals = [h for h in log if "eval_accuracy" in h]
    for h in evals:
        print(f"epoch {round(h['epoch']) - 1} test accuracy {h['eval_accuracy']:.4f}", flush=True)
    # the last epoch's evaluation is the final one (a run resumed after its last epoch evaluates again)
    after = evals[-1]["eval_accuracy"] if evals and round(evals[-1]["epoch"]) == cfg["epochs"] \
        else trainer.evaluate()["eval_accuracy"]
    metrics = {
        "method": cfg["method"],
        "before": {"accuracy": round(before, 4)},
        "metrics": {"accuracy": round(after, 4)},
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(time.time() - t0, 1),
        "n_train": len(train),
        "n_test": len(test),
        "curves": {"loss": [[h["step"], h["loss"]] for h in history]},
        "device": DEVICE,
        "deviations": deviations,
        "config": cfg,
    }
    tmp = os.path.join(out, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=2)
    os.replace(tmp, os.path.join(out, "metrics.json"))  # atomic: never a half-written metric file
    shutil.rmtree(trainer_dir, ignore_errors=True)  # checkpoints are for resuming only (and large)
    os.remove(before_path)
    print(f"accuracy after fine-tuning ({cfg['method']}): {after:.4f}", flush=True)


if __name__ == "__main__":
    main()
