"""The library-based scaffolds against the hand-written loops they replaced, side by side in one run.

    python bench/recipes.py [--train-limit 96] [--cls-train-limit 1024] [--rounds 2] [--seeds 42]
                            [--methods head lora full sft dpo]

For each of `head`, `lora`, `full` (sequence classification on transformers' Trainer + peft),
`sft` (TRL's SFTTrainer) and `dpo` (TRL's DPOTrainer): the recipe's config block, rendered from
one plan, is filled into today's template and into the hand-written loop it replaced
(bench/baselines/, the templates as they were before the port). Both run the same model, the
same data (the movie-review snippets), batch, max length, dynamic padding and seed, as host
processes with the same environment, alternately (A B A B ...) after one untimed warm-up of each.
Classification: MiniLM-L6, batch 32, max length 64, the demo paper's settings, on the first
``--cls-train-limit`` training sentences (a quarter as many test sentences, at least 50). Both
classification sides do the same work: the sentences are tokenized once, before either clock
starts, each batch padded to its longest sentence; the test set is evaluated once before training
and once per epoch, the last epoch's evaluation being the final number. (The loop as it was
before the port tokenized each batch inside its timed loop and evaluated the test set a second
time at the end; bench/baselines/classify_handwritten.py is changed in those two places only.)
Causal LM: SmolLM2-135M-Instruct from the embedded GGUF, de-quantised to float32, LoRA on q/v,
batch 8, max length 48.

Reported per recipe, after saying what each side's clocks cover (CLOCKS): whole-run seconds
(process start to exit: load, before-evaluation, training, after-evaluation — the same work for
both), training samples per second (the script's own train_seconds; like for like for
classification; for SFT and DPO the hand-written loops tokenize each batch inside their clock
where TRL tokenizes the dataset before it, and for DPO the hand-written loop computed the
reference log-probabilities before its clock started where TRL computes them inside training, so
only the whole-run ratio is like for like there), their ratio (TRL / hand-written speed, goal >=
0.95) and the metric each reaches (no worse within seed noise: the spread over seeds is printed
when more than one is given).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.llm import embedded_model_path  # noqa: E402
from agent.plan import Experiment, Hyper, Plan  # noqa: E402
from agent.recipes import fill_config, get_recipe  # noqa: E402
from agent.recipes.base import template_text  # noqa: E402
from sandbox.assets import host_assets  # noqa: E402

CLASSIFY = ("head", "lora", "full")
BASELINES = {"sft": ROOT / "bench" / "baselines" / "sft_handwritten.py",
             "dpo": ROOT / "bench" / "baselines" / "dpo_handwritten.py",
             **{m: ROOT / "bench" / "baselines" / "classify_handwritten.py" for m in CLASSIFY}}
METRIC = {"sft": ("perplexity", False), "dpo": ("preference_accuracy", True),
          **{m: ("accuracy", True) for m in CLASSIFY}}
LIBRARY = {"sft": "TRL", "dpo": "TRL", **{m: "Trainer" for m in CLASSIFY}}
GOAL = 0.95
WHOLE = "whole run = process start to exit (imports, data, model load, tokenization, every evaluation, training)"
_CLS_TIMED = "1 test evaluation + 1 checkpoint per epoch (the last epoch's evaluation is the final number)"
_CLS_NOT = "not timed: tokenization (once, before the clock), model load, the before-evaluation"
CLOCKS = {  # what each side's training clock (train_seconds -> samples/s) covers
    "classify": {
        "hand-written": f"timed: training loop (pad each batch, forward, backward, step) + {_CLS_TIMED}; {_CLS_NOT}, "
                        "optimiser set-up",
        "library": f"timed: trainer.train(): its set-up (optimiser, data loader) + training loop (collator pads each "
                   f"batch, forward, backward, step) + {_CLS_TIMED}; {_CLS_NOT}",
    },
    "sft": {
        "hand-written": "timed: training loop (tokenize + pad each batch, forward, backward, step, a checkpoint every "
                        "50 batches and at the epoch's end) + the after-perplexity; not timed: model load, the "
                        "before-perplexity",
        "library": "timed: trainer.train() (collator pads each batch, forward, backward, step, a checkpoint every 50 "
                   "steps) + the after-perplexity; not timed: tokenization of the training set (SFTTrainer's "
                   "constructor), model load, the before-perplexity",
    },
    "dpo": {
        "hand-written": "timed: training loop (tokenize each batch, policy log-probs, loss, step) + 1 checkpoint per "
                        "epoch + the after-evaluation; not timed: the reference log-probs (before the clock), model "
                        "load, the before-evaluation",
        "library": "timed: trainer.train() (reference log-probs inside, collator pads each batch, policy log-probs, "
                   "loss, step, 1 checkpoint per epoch) + the after-evaluation; not timed: tokenization of the "
                   "pairs (DPOTrainer's constructor), model load, the before-evaluation",
    },
}


def environment(tmp: Path) -> dict[str, str]:
    models = tmp / "models"
    models.mkdir(parents=True, exist_ok=True)
    gguf = embedded_model_path()
    if not (models / gguf.name).exists():
        (models / gguf.name).symlink_to(gguf)
    minilm = host_assets().model_path
    if not (models / minilm.name).exists():
        (models / minilm.name).symlink_to(minilm)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(REPRO_MODELS=str(models), REPRO_DATA=str(host_assets().data_dir), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return env


def scripts(method: str, train_limit: int, seed: int) -> dict[str, str]:
    classify = method in CLASSIFY
    plan = Plan(task="bench", paper_model="all-MiniLM-L6-v2" if classify else "SmolLM2-135M-Instruct",
                paper_dataset="movie-review snippets", causal_model=embedded_model_path().name,
                experiments=[Experiment(id=method, name=method, recipe=method)],
                hyper=Hyper(train_limit=train_limit, batch_size=32 if classify else 8,
                            max_length=64 if classify else 48, seed=seed))
    recipe = get_recipe(method)
    config = recipe.config(plan)
    return {"library": fill_config(template_text(recipe.template), config),
            "hand-written": fill_config(BASELINES[method].read_text(), config)}


def run_once(source: str, method: str, workdir: Path, env: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "train.py").write_text(source)
    out = workdir / "results" / method
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py", "--method", method, "--out", f"results/{method}"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{method} ({workdir.name}) failed:\n{proc.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"wall": wall, "train_seconds": m["train_seconds"], "n_train": m["n_train"],
            "epochs": m["config"]["epochs"], "metric": m["metrics"][METRIC[method][0]],
            "before": m["before"][METRIC[method][0]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-limit", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2, help="timed runs of each variant per seed (alternating)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--cls-train-limit", type=int, default=1024, help="training sentences of the classification runs")
    ap.add_argument("--methods", nargs="+", default=[*CLASSIFY, "sft", "dpo"], choices=sorted(BASELINES))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recipes-"))
    env = environment(tmp)
    print(f"classification: MiniLM-L6, {a.cls_train_limit} training sentences, batch 32, max length 64; "
          f"causal LM: {embedded_model_path().name}, {a.train_limit} training examples, batch 8, max length 48; "
          f"seeds {a.seeds}, {a.rounds} round(s), {os.cpu_count()} CPUs", flush=True)
    for method in a.methods:
        runs: dict[str, list[dict]] = {"hand-written": [], "library": []}
        clocks = CLOCKS["classify" if method in CLASSIFY else method]
        print(f"{method}: both sides: {WHOLE}")
        for variant in ("hand-written", "library"):
            name = "hand-written" if variant == "hand-written" else LIBRARY[method]
            print(f"{method}: {name} training clock: {clocks[variant]}", flush=True)
        limit = a.cls_train_limit if method in CLASSIFY else a.train_limit
        for seed in a.seeds:
            src = scripts(method, limit, seed)
            for variant in ("hand-written", "library"):  # warm-up: imports and file cache, untimed
                run_once(src[variant], method, tmp / f"{method}-{variant}-warm", env)
            for r in range(a.rounds):
                order = ("hand-written", "library") if r % 2 == 0 else ("library", "hand-written")
                for variant in order:
                    got = run_once(src[variant], method, tmp / f"{method}-{variant}", env)
                    got["seed"] = seed
                    runs[variant].append(got)
                    print(f"  {method} {variant:12s} seed {seed}: {got['wall']:.1f} s whole run, "
                          f"{got['n_train'] * got['epochs'] / got['train_seconds']:.2f} samples/s in training, "
                          f"{METRIC[method][0]} {got['before']:.4g} -> {got['metric']:.4g}", flush=True)
        _summary(method, runs)
    return 0


def _summary(method: str, runs: dict[str, list[dict]]) -> None:
    def med(variant, key):
        return statistics.median(r[key] for r in runs[variant])

    def rate(variant):
        return statistics.median(r["n_train"] * r["epochs"] / r["train_seconds"] for r in runs[variant])

    whole = med("hand-written", "wall") / med("library", "wall")
    loop = rate("library") / rate("hand-written")
    name, higher = METRIC[method]
    lib = LIBRARY[method]
    print(f"{method}: whole run {med('hand-written', 'wall'):.1f} s hand-written vs {med('library', 'wall'):.1f} s "
          f"{lib} -> speed ratio {whole:.2f}x (goal >= {GOAL}: {'OK' if whole >= GOAL else 'MISSED'})")
    print(f"{method}: training only {rate('hand-written'):.2f} vs {rate('library'):.2f} samples/s -> {loop:.2f}x"
          + (" (not like for like: the clocks differ, above)" if method in ("sft", "dpo") else " (like for like)"))
    outside = {v: statistics.median(r["wall"] - r["train_seconds"] for r in runs[v]) for v in runs}
    print(f"{method}: outside the training clock (whole run minus train_seconds: start-up, imports, load, "
          f"tokenization, before-evaluation, writing) {outside['hand-written']:.1f} s hand-written vs "
          f"{outside['library']:.1f} s {lib}")
    for variant in ("hand-written", "library"):
        by_seed = {}
        for r in runs[variant]:
            by_seed.setdefault(r["seed"], r["metric"])  # a seed's runs are deterministic: one value each
        vals = list(by_seed.values())
        spread = f", spread over seeds {max(vals) - min(vals):.4g}" if len(vals) > 1 else ""
        print(f"{method}: {variant:12s} {name} {statistics.mean(vals):.4g} "
              f"({'higher' if higher else 'lower'} is better{spread})")


if __name__ == "__main__":
    sys.exit(main())
