"""Test doubles for `repro eval`, importable by Ray workers: a scripted coding agent and judge.

Named in an eval configuration as ``model_factory: agent.eval.doubles:scripted_models`` (with
``factory_args``), so tests and the bench run whole replications — ingest, plan, the tool loop
in a real sandbox (local or Docker), the reproduction with its start marker, judge, report — with
no model endpoint, in a few seconds each.

Nothing here fakes a *result*: the scripted agent writes a real (tiny) model — naive Bayes on the
movie-review snippets — whose numbers the reproduction computes; the judge code grading them is
the real one. Only the models' answers are scripted.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from agent.llm import ModelError, ScriptedChatModel

CRITERION = re.compile(r"^\[(L\d+)\] (.*)$", re.MULTILINE)
# The planner's two model-asked stages: claims (stage 1), per-experiment settings (stage 2).
CLAIMS_ANSWER = {"experiments": [{"name": "Classifier head only", "method": "train the classifier head",
                                  "recipe": "head", "claim": "the paper reports the head", "results": ["none"]}]}
SETTINGS_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
                   "dataset": "movie-review snippets",
                   "experiments": [{"experiment": "E1", "epochs": 1, "batch_size": 16, "learning_rate": 5e-5,
                                    "metrics": ["accuracy"], "targets": []}]}

# A model the scripted agent writes: naive Bayes on the snippets (about a second of work, plus
# WORK_S seconds of CPU when the bench asks for more), seeded by REPRO_SEED and shrunk by
# REPRO_SMOKE as the submission contract asks. FORGE: it also back-dates its results file, as a
# submission that leaves stale results would — the start-marker rule must then ignore them.
TINY_TRAIN = '''"""Naive Bayes sentiment baseline (written by the agent)."""
import json, math, os, random, sys, time
from collections import Counter

WORK_S, FORGE = 0.0, False
exp = sys.argv[1]
seed = int(os.environ.get("REPRO_SEED", "42"))
rows = []
with open(os.path.join(os.environ["REPRO_DATA"], "movieReviewSnippets_GroundTruth.txt"), errors="replace") as f:
    for line in f:
        parts = line.rstrip("\\n").split("\\t")
        try:
            score = float(parts[1])
        except (IndexError, ValueError):
            continue
        if score:
            rows.append((parts[2].lower().split(), int(score > 0)))
random.Random(seed).shuffle(rows)
if os.environ.get("REPRO_SMOKE") == "1":
    rows, WORK_S = rows[:400], 0.0
cut = len(rows) // 5
test, train = rows[:cut], rows[cut:]
counts = [Counter(), Counter()]
for words, y in train:
    counts[y].update(words)
prior = sum(y for _, y in train) / len(train)
totals = [sum(c.values()) for c in counts]
vocab = len(set(counts[0]) | set(counts[1]))

def predict(words):
    s = math.log(prior / (1 - prior))
    for w in words:
        s += math.log((counts[1][w] + 1) / (totals[1] + vocab)) - math.log((counts[0][w] + 1) / (totals[0] + vocab))
    return int(s > 0)

end, x = time.monotonic() + WORK_S, 0
while time.monotonic() < end:  # stands in for a longer training (the scaling bench)
    x = (x * 31 + 7) % 1_000_003
accuracy = sum(predict(w) == y for w, y in test) / len(test)
majority = max(prior, 1 - prior)
os.makedirs(f"results/{exp}", exist_ok=True)
path = f"results/{exp}/metrics.json"
json.dump({"metrics": {"accuracy": round(accuracy, 4)}, "before": {"accuracy": round(majority, 4)},
           "n_train": len(train)}, open(path, "w"), indent=1)
if FORGE:
    os.utime(path, (time.time() - 3600, time.time() - 3600))
print(f"{exp}: accuracy {accuracy:.4f} (majority {majority:.4f})")
'''
REPRODUCE = "#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nrm -rf results\npython train.py head\n"


def tiny_train(work_s: float = 0.0, forge: bool = False) -> str:
    return TINY_TRAIN.replace("WORK_S, FORGE = 0.0, False", f"WORK_S, FORGE = {float(work_s)}, {bool(forge)}")


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _last_result(messages: list[dict]) -> str | None:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "tool"), None)


def coding_turn(messages: list[dict], *, work_s: float = 0.0, forge: bool = False, recipe: str | None = None) -> dict:
    """The scripted agent's next tool call, from the latest tool result: write the model (or, with
    ``recipe``, scaffold that tested recipe: real MiniLM training), write reproduce.sh, smoke-test
    it, submit."""
    last = _last_result(messages)
    if recipe is not None:
        if last is None:
            call = {"tool": "scaffold", "args": {"recipe": recipe, "experiment": recipe}}
        elif last.startswith("scaffolded"):
            call = {"tool": "bash", "args": {"command": "REPRO_SMOKE=1 bash reproduce.sh", "timeout": 600}}
        else:
            call = {"tool": "submit", "args": {"note": f"the {recipe} recipe, smoke-tested"}}
        return {"thought": "next step", "calls": [call]}
    if last is None:
        call = {"tool": "write_file", "args": {"path": "train.py", "content": tiny_train(work_s, forge)}}
    elif last.startswith("wrote train.py"):
        call = {"tool": "write_file", "args": {"path": "reproduce.sh", "content": REPRODUCE}}
    elif last.startswith("wrote reproduce.sh"):
        call = {"tool": "bash", "args": {"command": "REPRO_SMOKE=1 bash reproduce.sh", "timeout": 300}}
    else:
        call = {"tool": "submit", "args": {"note": "naive Bayes baseline for the head experiment"}}
    return {"thought": "next step", "calls": [call]}


def _responder(role: str, seed: int, paper_id: str, skill: float, work_s: float, forge: bool,
               recipe: str | None = None) -> Callable[[list[dict], dict | None], Any]:
    def answer(messages: list[dict], schema: dict | None) -> Any:
        props = (schema or {}).get("properties", {})
        if "verdicts" in props:  # the judge: one verdict per criterion key, score from (seed, requirement)
            criteria = messages[2]["content"] if len(messages) > 2 else messages[-1]["content"]
            return {"verdicts": [{"key": k, "explanation": f"scripted check of: {req[:60]}",
                                  "score": int(_unit(seed, paper_id, req) < skill)}
                                 for k, req in CRITERION.findall(criteria)]}
        if "base_model" in props:  # planning stage 2: the settings of each experiment
            return SETTINGS_ANSWER
        if "experiments" in props:  # planning stage 1: the paper's experiments and claims
            return CLAIMS_ANSWER
        if schema is None and role == "agent":  # a turn of the coding agent's tool loop
            return coding_turn(messages, work_s=work_s, forge=forge, recipe=recipe)
        return ModelError(f"scripted {role} model has no answer for a request with schema keys {sorted(props)}")

    return answer


def scripted_models(*, config: Any, seed: int, paper_id: str, skill: float = 0.6, calls: int = 400,
                    fail: list[str] | tuple = (), forge_papers: list[str] | tuple = (), work_s: float = 0.0,
                    recipe: str | None = None, **_: Any) -> tuple[ScriptedChatModel, ScriptedChatModel]:
    """(agent, judge) scripted models. The judge passes a leaf when a hash of (seed, requirement)
    falls below ``skill``: seeds and papers differ, so a mean ± SEM over seeds is a real spread.
    ``fail``: "paper-id:seed" entries whose agent model errors on its first call (a failed run);
    ``forge_papers``: papers whose agent back-dates its results (the reproduction must ignore them);
    ``work_s``: seconds of CPU the agent's model burns in a full (non-smoke) run; ``recipe``: scaffold
    that recipe instead of writing a model (real training, for the scaling bench)."""
    if f"{paper_id}:{seed}" in set(fail):
        outage = ModelError("scripted outage: the model endpoint refused the connection")
        return ScriptedChatModel([outage], name="scripted-agent"), ScriptedChatModel([], name="scripted-judge")
    forge = paper_id in set(forge_papers)
    agent = ScriptedChatModel([_responder("agent", seed, paper_id, skill, work_s, forge, recipe)] * calls,
                              name="scripted-agent")
    judge = ScriptedChatModel([_responder("judge", seed, paper_id, skill, work_s, forge)] * calls,
                              name="scripted-judge")
    return agent, judge


def make_demo_papers(dest: Path, variants: int = 2) -> list[Path]:
    """The bundled demo paper plus ``variants`` re-rendered variants (other numbers, same rubric
    minus a few leaves), as a PaperBench-style directory: <paper-id>/paper.pdf, rubric.json."""
    from papers.demo import DEMO_DIR, render_pdf

    dest = Path(dest)
    out = []
    base = dest / "demo-minilm-sentiment"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DEMO_DIR / "paper.pdf", base / "paper.pdf")
    shutil.copy2(DEMO_DIR / "rubric.json", base / "rubric.json")
    out.append(base)
    results = json.loads((DEMO_DIR / "results.json").read_text())
    methods = ("head", "lora", "full")
    rubric = json.loads((DEMO_DIR / "rubric.json").read_text())
    for v in range(1, variants + 1):
        r = json.loads(json.dumps(results))
        for i, m in enumerate(methods):
            r[m]["after"] = round(min(0.99, r[m]["after"] + 0.01 * v * (i + 1)), 4)
        r["seed"] = r.get("seed", 0) + v
        d = dest / f"demo-variant-{v}"
        d.mkdir(parents=True, exist_ok=True)
        render_pdf(r, d / "paper.pdf")
        rb = json.loads(json.dumps(rubric))
        if v % 2 == 0:  # a smaller rubric: one data-pipeline leaf fewer, other weights
            rb["sub_tasks"][0]["sub_tasks"] = rb["sub_tasks"][0]["sub_tasks"][1:]
            rb["sub_tasks"][-1]["weight"] = 4
        (d / "rubric.json").write_text(json.dumps(rb, indent=2))
        out.append(d)
    return out
