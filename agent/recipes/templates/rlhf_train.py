"""RLHF on a CPU: a reward model from preference pairs, then online RL of a small causal LM.

Written by Repro from its tested `rlhf` recipe, on the libraries a researcher would use: TRL's
RewardTrainer and GRPOTrainer with a peft LoRA adapter. One config block on top, seeded, metrics
written to a JSON file.

1. Reward model: MiniLM-L6 with a scalar head, trained with TRL's RewardTrainer on preference
   pairs built from the movie-review snippets (a clearly positive snippet is *chosen*, a clearly
   negative one *rejected*); its pairwise accuracy on held-out pairs is reported.
2. Policy: SmolLM2-135M-Instruct with a LoRA adapter, tuned with TRL's GRPOTrainer to continue
   movie-review openings ("The acting", "This film", ...) so the reward model scores the review
   higher, with a KL penalty (beta) to the starting model. GRPO rather than PPO: TRL (1.x) no longer
   ships a PPO trainer; GRPO is its maintained online RL trainer, and it needs no value model,
   which also halves the memory on a CPU.
3. Evaluation on held-out openings: mean reward before and after (the same seeded sampling), the
   KL to the reference model (the policy with its adapter off) per completion token, and a few
   generations before and after.
Usage: python train.py [--method rlhf] [--out results/NAME]
"""
import argparse
import json
import os
import random
import time

# ----------------------------------------------------------------------------- config
# REPRO-CONFIG-BEGIN (filled from the plan; every value here is also recorded in metrics.json)
CONFIG = {
    "method": "rlhf",
    "model_name": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "reward_base": "all-MiniLM-L6-v2",
    "dataset": "movieReviewSnippets_GroundTruth.txt",
    "seed": 42,
    "rm_pairs": 256,
    "rm_epochs": 1,
    "rm_learning_rate": 1e-4,
    "rm_max_length": 48,
    "instruction": "Write one sentence of a movie review.\nReview: ",
    "openers": ["The movie", "This film", "The acting", "The story", "The director", "The plot", "The cast",
                "The ending", "The script", "The characters", "The soundtrack", "The dialogue", "The pacing",
                "The visuals", "The humor", "This sequel"],
    "eval_openers": 4,
    "eval_samples": 8,
    "steps": 40,
    "batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 16,
    "learning_rate": 1e-3,
    "beta": 0.04,
    "temperature": 1.0,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_target_modules": ["q_proj", "v_proj"],
}
# REPRO-CONFIG-END
# -----------------------------------------------------------------------------

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig, TaskType  # noqa: E402
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["rlhf"], default=CONFIG["method"])
    p.add_argument("--out", default=None)
    return p.parse_args()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def asset(name, env, default):
    return os.path.join(os.environ.get(env, default), name)


def preference_pairs(cfg):
    """(chosen, rejected) = (clearly positive, clearly negative) snippet, shuffled with the seed."""
    pos, neg = [], []
    with open(asset(cfg["dataset"], "REPRO_DATA", "/opt/repro/data"), encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            try:
                mean = float(parts[1])
            except (IndexError, ValueError):
                continue
            if len(parts) >= 3 and mean >= 1.5:
                pos.append(parts[2].strip())
            elif len(parts) >= 3 and mean <= -1.5:
                neg.append(parts[2].strip())
    rng = np.random.default_rng(cfg["seed"])
    pos = [pos[i] for i in rng.permutation(len(pos))]
    neg = [neg[i] for i in rng.permutation(len(neg))]
    pairs = [{"chosen": c, "rejected": r} for c, r in zip(pos, neg)]
    n = cfg["rm_pairs"]
    return pairs[:n], pairs[n: n + max(32, n // 4)]


def train_reward_model(cfg, out):
    path = asset(cfg["reward_base"], "REPRO_MODELS", "/opt/repro/models")
    tok = AutoTokenizer.from_pretrained(path)
    tok.eos_token = tok.eos_token or tok.sep_token  # RewardTrainer ends each text with EOS; BERT's is [SEP]
    rm = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    train, held = preference_pairs(cfg)
    args = RewardConfig(output_dir=os.path.join(out, "reward_model"), per_device_train_batch_size=16,
                        num_train_epochs=cfg["rm_epochs"], learning_rate=cfg["rm_learning_rate"],
                        max_length=cfg["rm_max_length"], seed=cfg["seed"], logging_steps=1, save_strategy="no",
                        report_to=[], disable_tqdm=True, use_cpu=DEVICE == "cpu")
    trainer = RewardTrainer(model=rm, args=args, train_dataset=Dataset.from_list(train), processing_class=tok)
    trainer.train()
    rm.eval()

    @torch.no_grad()
    def score(texts):
        scores = []
        for i in range(0, len(texts), 64):
            enc = tok(texts[i: i + 64], padding=True, truncation=True, max_length=cfg["rm_max_length"],
                      return_tensors="pt").to(DEVICE)
            scores += rm(**enc).logits[:, 0].float().cpu().tolist()
        return scores

    chosen, rejected = score([p["chosen"] for p in held]), score([p["rejected"] for p in held])
    accuracy = float(np.mean([c > r for c, r in zip(chosen, rejected)]))
    curve = [[h["step"], round(h["loss"], 5)] for h in trainer.state.log_history if "loss" in h]
    return score, accuracy, len(train), len(held), curve


def load_policy(cfg):
    path = asset(cfg["model_name"], "REPRO_MODELS", "/opt/repro/models")
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
    tok.padding_side = "left"  # generation appends on the right
    return tok, model.to(DEVICE)


@torch.no_grad()
def sample(model, tok, prompts, cfg, seed):
    """Completions of each prompt, sampled with a fixed seed (the same draw before and after)."""
    model.eval()
    torch.manual_seed(seed)
    enc = tok(prompts, return_tensors="pt", padding=True).to(DEVICE)
    out = model.generate(**enc, max_new_tokens=cfg["max_completion_length"], do_sample=True,
                         temperature=cfg["temperature"], top_p=1.0, top_k=0, pad_token_id=tok.pad_token_id)
    return out, enc["input_ids"].shape[1], tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


@torch.no_grad()
def kl_to_reference(model, tok, seqs, start):
    """KL(pi || ref) per completion token, estimated on the policy's own samples with the
    non-negative estimator exp(r) - r - 1, r = log ref - log pi (what TRL's GRPO penalises);
    the reference is the policy with its adapter off."""
    mask = (seqs[:, start:] != tok.pad_token_id).float()
    attention = torch.ones_like(seqs)
    attention[:, :start] = (seqs[:, :start] != tok.pad_token_id).long()

    def logps(m):
        logits = m(input_ids=seqs, attention_mask=attention).logits[:, start - 1:-1].float()
        return torch.gather(torch.log_softmax(logits, -1), 2, seqs[:, start:].unsqueeze(-1)).squeeze(-1)

    pi = logps(model)
    with model.disable_adapter():
        ref = logps(model)
    r = ref - pi
    return float(((torch.exp(r) - r - 1) * mask).sum() / mask.sum().clamp(min=1))


def main():
    args = parse_args()
    cfg = dict(CONFIG, method=args.method)
    # The submission contract: REPRO_SEED seeds the run; REPRO_SMOKE=1 is a quick run of every code path.
    cfg["seed"] = int(os.environ.get("REPRO_SEED", cfg["seed"]))
    if os.environ.get("REPRO_SMOKE") == "1":
        cfg.update(rm_pairs=32, steps=1, eval_openers=2, eval_samples=2, max_completion_length=8)
    out = args.out or os.path.join("results", cfg["method"])
    os.makedirs(out, exist_ok=True)
    # the sandbox's CPU quota (OMP_NUM_THREADS) when set: more threads than cores only wait
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, os.cpu_count() or 1))
    hf_logging.set_verbosity_error()
    seed_everything(cfg["seed"])
    t0 = time.time()

    score, rm_accuracy, rm_train, rm_held, rm_curve = train_reward_model(cfg, out)
    print(f"reward model: pairwise accuracy {rm_accuracy:.4f} on {rm_held} held-out pairs "
          f"({rm_train} training pairs, {time.time() - t0:.0f} s)", flush=True)

    tok, policy = load_policy(cfg)
    openers = list(cfg["openers"])
    held_out, train_openers = openers[: cfg["eval_openers"]], openers[cfg["eval_openers"]:]
    eval_prompts = [cfg["instruction"] + o for o in held_out for _ in range(cfg["eval_samples"])]
    eval_openers = [o for o in held_out for _ in range(cfg["eval_samples"])]

    def reviews(openers_, completions):
        return [o + c for o, c in zip(openers_, completions)]

    seqs, start, texts = sample(policy, tok, eval_prompts, cfg, cfg["seed"])
    before = float(np.mean(score(reviews(eval_openers, texts))))
    samples_before = reviews(eval_openers, texts)[:: cfg["eval_samples"]][:3]
    print(f"mean reward before: {before:.4f}", flush=True)

    def reward(prompts, completions, **_):
        # the review is the opener plus the completion: the reward model never sees the instruction
        return score([p[len(cfg["instruction"]):] + c for p, c in zip(prompts, completions)])

    steps = cfg["steps"]
    data = Dataset.from_list([{"prompt": cfg["instruction"] + o}
                              for o in (train_openers * (steps * cfg["batch_size"] // len(train_openers) + 1))])
    grpo_args = GRPOConfig(
        output_dir=os.path.join(out, "grpo"), max_steps=steps, per_device_train_batch_size=cfg["batch_size"],
        num_generations=cfg["num_generations"], max_completion_length=cfg["max_completion_length"],
        learning_rate=cfg["learning_rate"], beta=cfg["beta"], temperature=cfg["temperature"], seed=cfg["seed"],
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=DEVICE == "cpu")
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
                      target_modules=cfg["lora_target_modules"])
    trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=grpo_args, train_dataset=data,
                          processing_class=tok, peft_config=lora)
    t1 = time.time()
    trainer.train()
    model = trainer.model
    logs = [h for h in trainer.state.log_history if "reward" in h]

    seqs, start, texts = sample(model, tok, eval_prompts, cfg, cfg["seed"])
    after = float(np.mean(score(reviews(eval_openers, texts))))
    kl = kl_to_reference(model, tok, seqs, start)
    samples_after = reviews(eval_openers, texts)[:: cfg["eval_samples"]][:3]
    print(f"mean reward after: {after:.4f} (before {before:.4f}); KL to the reference {kl:.4f} per token", flush=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    metrics = {
        "method": cfg["method"],
        "before": {"mean_reward": round(before, 4), "kl": 0.0},
        "metrics": {"mean_reward": round(after, 4), "kl": round(kl, 5), "reward_model_accuracy": round(rm_accuracy, 4)},
        "samples": {"before": samples_before, "after": samples_after},
        "trainable_params": trainable,
        "total_params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.time() - t1, 1),
        "n_train": steps * cfg["batch_size"],
        "n_test": len(eval_prompts),
        "n_reward_pairs": rm_train,
        "n_held_pairs": rm_held,
        "curves": {"reward": [[h["step"], round(h["reward"], 5)] for h in logs],
                   "kl": [[h["step"], round(h.get("kl", 0.0), 6)] for h in logs],
                   "reward_model_loss": rm_curve},
        "device": DEVICE,
        "deviations": [],
        "config": cfg,
    }
    tmp = os.path.join(out, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=2)
    os.replace(tmp, os.path.join(out, "metrics.json"))  # atomic: never a half-written metric file


if __name__ == "__main__":
    main()
