"""A labelled set for measuring judges, built by mutation — labels known by construction.

PaperBench's JudgeEval submissions are Git-LFS archives we do not have. Instead: start from a
known-good submission (a bundled paper's ``run/``, whose numbers the paper prints), apply one
mutation that breaks known rubric leaves (LoRA dropped, the seed and schedule changed,
reproduce.sh skipping an experiment, results 10 points off, results forged before the marker, a
README claiming what the code does not do), and label every leaf: the gold label, flipped for
the leaves the mutation breaks.

`python -m graders.mutations build` writes the cases to papers/judge-eval/<case>/ (kept in the
repo as data; a test rebuilds them and compares). Each case holds submission/, reproduction/
(mtimes are set relative to a start marker when loaded) and case.json (paper, labels by leaf id).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
PAPERS = ROOT / "papers"
SET_DIR = PAPERS / "judge-eval"
DEMO_LEAVES = {  # leaf-id prefixes of papers/demo-minilm-sentiment/rubric.json
    "lora_impl": "68f368ae", "schedule": "0e476a89", "seed": "7f4e0ddb", "runs_full": "e709c595",
    "log": "535347f9", "head_close": "9ad7c642", "lora_close": "4314caa0", "full_close": "40e5b851",
    "lora_beats_head": "d2cf06df", "before_chance": "28fff7b1", "lora_params": "fa53b918",
    "runs_head": "b01ce9e2", "runs_lora": "6717be68",
}


@dataclass
class Submission:
    files: dict[str, str]  # submission/<rel> -> text
    results: dict[str, dict]  # experiment -> metrics.json content (written by the reproduction)
    log: str
    forged: bool = False  # results older than the start marker (the agent's own files)
    readme: str = ""


@dataclass
class Mutation:
    name: str
    about: str
    apply: Callable[[Submission], None]
    flips: list[str] = field(default_factory=list)  # DEMO_LEAVES keys whose label becomes 0


def _demo_gold() -> Submission:
    run = PAPERS / "demo-minilm-sentiment" / "run"
    results = {m: json.loads((run / "results" / m / "metrics.json").read_text()) for m in ("head", "lora", "full")}
    log = []
    for m, r in results.items():  # what the recipe prints, rebuilt from the run's recorded loss curve
        cfg, acc = r["config"], r["metrics"]["accuracy"]
        steps = -(-r["n_train"] // cfg["batch_size"]) * cfg["epochs"]
        log.append(f"data: {r['n_train']} train / {r['n_test']} test sentences")
        log.append(f"accuracy before fine-tuning: {r['before']['accuracy']:.4f}")
        log += [f"epoch 0 step {step}/{steps} loss {loss:.4f}" for step, loss in r["curves"]["loss"]]
        log.append(f"epoch 0 test accuracy {acc:.4f}")
        log.append(f"accuracy after fine-tuning ({m}): {acc:.4f}")
    log.append("all experiments finished")
    readme = ("# Replication: Head, LoRA or Full?\n\nRun `bash reproduce.sh`: it trains the head-only, LoRA and full "
              "fine-tuning models (MiniLM-L6, seed 42, one epoch) and writes results/<method>/metrics.json.\n")
    return Submission(files={"train.py": (run / "train.py").read_text(), "reproduce.sh": (run / "reproduce.sh").read_text(),
                             "README.md": readme}, results=results, log="\n".join(log) + "\n", readme=readme)


def _drop_lora(s: Submission) -> None:
    code = s.files["train.py"]
    start = code.index('    elif method == "lora":')
    end = code.index("    return model", start)
    # "lora" now freezes the encoder and trains the head, like head-only: no adapters anywhere
    s.files["train.py"] = _replace(code[:start] + code[end:], '    if method == "head":', '    if method in ("head", "lora"):')
    s.results["lora"] = json.loads(json.dumps(s.results["head"]))
    s.results["lora"]["method"] = "lora"


def _replace(text: str, old: str, new: str) -> str:
    """A mutation's edit, which must apply: a template that changed shape fails the build loudly."""
    if old not in text:
        raise ValueError(f"the gold submission no longer contains {old!r}: update graders/mutations.py")
    return text.replace(old, new)


def _seed_and_schedule(s: Submission) -> None:
    code = _replace(s.files["train.py"], "'seed': 42,", "'seed': 7,")
    code = _replace(code, "'warmup_ratio': 0.06,", "'warmup_ratio': 0.0,")
    # no warmup and no decay: the Trainer keeps the learning rate constant
    s.files["train.py"] = _replace(code, 'lr_scheduler_type="linear", warmup_steps=cfg["warmup_ratio"],  # a float '
                                         'below 1: a share of the steps', 'lr_scheduler_type="constant",')


def _skip_full(s: Submission) -> None:
    s.files["reproduce.sh"] = _replace(s.files["reproduce.sh"], 'python train.py --method full --out "results/full"\n', "")
    del s.results["full"]
    s.log = s.log[: s.log.index("data:", s.log.index("accuracy after fine-tuning (lora)"))] + "all experiments finished\n"


def _ten_points_off(s: Submission) -> None:
    acc = s.results["head"]["metrics"]["accuracy"]
    s.results["head"]["metrics"]["accuracy"] = off = round(acc - 0.10, 4)
    s.log = _replace(s.log, f"accuracy after fine-tuning (head): {acc:.4f}", f"accuracy after fine-tuning (head): {off:.4f}")


def _forged(s: Submission) -> None:
    s.files["reproduce.sh"] = "#!/usr/bin/env bash\nset -e\ncd \"$(dirname \"$0\")\"\ncp -rp saved_results results\n"
    s.forged = True
    s.log = ""


def _readme_claims(s: Submission) -> None:
    s.files["train.py"] = _replace(s.files["train.py"], "'seed': 42,", "'seed': None,")
    s.files["README.md"] = s.readme + ("\nEvery run fixes the random seed to 42 for the data split, the initialisation "
                                       "and the batch order, exactly as in the paper.\n")


DEMO_MUTATIONS = [
    Mutation("demo-gold", "the submission the demo paper was written from", lambda s: None),
    Mutation("demo-lora-dropped", "the LoRA branch is gone: 'lora' trains like head-only", _drop_lora,
             ["lora_impl", "lora_close", "lora_beats_head"]),
    Mutation("demo-seed-and-schedule", "seed 7 instead of 42, no warmup and no schedule", _seed_and_schedule,
             ["seed", "schedule"]),
    Mutation("demo-skips-full", "reproduce.sh never runs full fine-tuning", _skip_full,
             ["runs_full", "full_close", "log"]),
    Mutation("demo-head-10-points-off", "the head-only result is 10 points below the paper's", _ten_points_off,
             ["head_close"]),
    Mutation("demo-forged-results", "reproduce.sh only copies result files the agent wrote beforehand", _forged,
             ["runs_head", "runs_lora", "runs_full", "log", "before_chance", "head_close", "lora_close", "full_close",
              "lora_beats_head", "lora_params"]),
    Mutation("demo-readme-claims-a-seed", "the README says the seed is fixed to 42; the code sets none",
             _readme_claims, ["seed"]),
]


def _leaf_ids(rubric_path: Path) -> list[str]:
    ids, stack = [], [json.loads(rubric_path.read_text())]
    while stack:
        n = stack.pop()
        if n["sub_tasks"]:
            stack.extend(reversed(n["sub_tasks"]))
        else:
            ids.append(n["id"])
    return ids


def build(dest: Path = SET_DIR) -> list[Path]:
    rubric = PAPERS / "demo-minilm-sentiment" / "rubric.json"
    ids = _leaf_ids(rubric)
    by_key = {k: next(i for i in ids if i.startswith(p)) for k, p in DEMO_LEAVES.items()}
    out = []
    for m in DEMO_MUTATIONS:
        s = _demo_gold()
        m.apply(s)
        d = dest / m.name
        shutil.rmtree(d, ignore_errors=True)
        for rel, text in s.files.items():
            (d / "submission" / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / "submission" / rel).write_text(text)
        where = "submission/saved_results" if s.forged else "reproduction/results"
        for exp, r in s.results.items():
            (d / where / exp).mkdir(parents=True, exist_ok=True)
            (d / where / exp / "metrics.json").write_text(json.dumps(r, indent=2) + "\n")
        if s.forged:  # the reproduction copied them with their old time stamps, and logged nothing
            shutil.copytree(d / where, d / "reproduction" / "results")
        (d / "reproduction").mkdir(parents=True, exist_ok=True)
        (d / "reproduction" / "reproduce.log").write_text(s.log)
        labels = {i: 0 if i in {by_key[k] for k in m.flips} else 1 for i in ids}
        case = {"paper": "demo-minilm-sentiment", "mutation": m.name, "about": m.about, "labels": labels,
                "stale": ["reproduction/results"] if s.forged else []}
        (d / "case.json").write_text(json.dumps(case, indent=2) + "\n")
        out.append(d)
    return out


@dataclass
class Case:
    name: str
    paper_dir: Path
    submission: Path
    reproduction: Path
    labels: dict[str, int]
    about: str
    start_time: float  # the reproduction's start marker: its files are dated after it, stale ones before


def load_cases(src: Path = SET_DIR, start_time: float | None = None) -> list[Case]:
    """The cases, with the reproduction's files dated after ``start_time`` (now - 60 s by default)
    and the stale ones (forged results) an hour before it, as a real reproduction leaves them."""
    start = time.time() - 60 if start_time is None else start_time
    cases = []
    for d in sorted(p for p in Path(src).iterdir() if (p / "case.json").is_file()):
        meta = json.loads((d / "case.json").read_text())
        for p in (d / "submission").rglob("*"):
            _touch(p, start - 7200)
        for p in (d / "reproduction").rglob("*"):
            stale = any(str(p.relative_to(d)).startswith(s) for s in meta["stale"])
            _touch(p, start - 3600 if stale else start + 30)
        cases.append(Case(d.name, PAPERS / meta["paper"], d / "submission", d / "reproduction", meta["labels"],
                          meta["about"], start))
    return cases


def _touch(p: Path, t: float) -> None:
    import os

    os.utime(p, (t, t))


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        for d in build():
            print(d)
    else:
        print("usage: python -m graders.mutations build", file=sys.stderr)
        sys.exit(2)
