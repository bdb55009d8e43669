"""Test doubles for `repro eval`, importable by Ray workers: a scripted model and a fake sandbox.

Named in an eval configuration as ``model_factory: agent.eval.doubles:scripted_models`` and
``sandbox_factory: agent.eval.doubles:fake_sandboxes`` (with ``factory_args``), so tests and the
bench run whole replications — ingest, plan, implement, smoke run, reproduction with its start
marker, judge, report — with no model endpoint and no Docker, in a few seconds each.

Nothing here fakes a *result*: the reports these runs write are graded by the real judge code
over what the fake sandbox produced; only the model's answers and the training are scripted.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from agent.llm import ModelError, ScriptedChatModel
from sandbox.base import ExecResult
from sandbox.fake import FakeSandbox

CRITERION = re.compile(r"^\[(L\d+)\] (.*)$", re.MULTILINE)
METHODS = ("head", "lora", "full")
# The planner's two model-asked stages: claims (stage 1), per-experiment settings (stage 2).
CLAIMS_ANSWER = {"experiments": [{"name": m, "method": m, "claim": f"the paper reports {m}", "result": "none"}
                                 for m in METHODS]}
SETTINGS_ANSWER = {"task": "binary sentiment classification", "base_model": "all-MiniLM-L6-v2",
                   "dataset": "movie-review snippets",
                   "experiments": [{"method": m, "epochs": 1, "batch_size": 16, "learning_rate": 5e-5,
                                    "metrics": ["accuracy"], "targets": []} for m in METHODS]}


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _responder(role: str, seed: int, paper_id: str, skill: float) -> Callable[[list[dict], dict | None], Any]:
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
        return ModelError(f"scripted {role} model has no answer for a request with schema keys {sorted(props)}")

    return answer


def scripted_models(*, config: Any, seed: int, paper_id: str, skill: float = 0.6, calls: int = 400,
                    fail: list[str] | tuple = (), **_: Any) -> tuple[ScriptedChatModel, ScriptedChatModel]:
    """(agent, judge) scripted models. The judge passes a leaf when a hash of (seed, requirement)
    falls below ``skill``: seeds and papers differ, so a mean ± SEM over seeds is a real spread.
    ``fail``: "paper-id:seed" entries whose agent model errors on its first call (a failed run)."""
    if f"{paper_id}:{seed}" in set(fail):
        outage = ModelError("scripted outage: the model endpoint refused the connection")
        return ScriptedChatModel([outage], name="scripted-agent"), ScriptedChatModel([], name="scripted-judge")
    agent = ScriptedChatModel([_responder("agent", seed, paper_id, skill)] * calls, name="scripted-agent")
    judge = ScriptedChatModel([_responder("judge", seed, paper_id, skill)] * calls, name="scripted-judge")
    return agent, judge


class TrainingFakeSandbox(FakeSandbox):
    """A FakeSandbox whose ``reproduce.sh`` "trains": it writes results/<method>/metrics.json.

    ``forge``: the metrics files get an mtime an hour *before* the reproduction's start marker,
    as a result file the agent left in its submission would — the start-marker rule must ignore
    them. ``work_s``: seconds of real CPU work per reproduction (for the scaling bench).
    """

    def __init__(self, *, run_id: str, seed: int, forge: bool = False, work_s: float = 0.0, **kw: Any):
        super().__init__(results=self._respond, run_id=run_id)
        self.seed, self.forge, self.work_s = seed, forge, work_s

    def _respond(self, cmd: list[str] | str) -> ExecResult:
        text = cmd if isinstance(cmd, str) else " ".join(cmd)
        if "reproduce.sh" not in text:
            return ExecResult(returncode=0, stdout="ok\n", duration_s=0.0)
        t0 = time.monotonic()
        burn(self.work_s)
        mtime = time.time() - 3600 if self.forge else time.time()
        for m in METHODS:
            after = round(0.7 + 0.2 * _unit(self.run_id, self.seed, m), 4)
            metrics = {"method": m, "metric": "accuracy", "before": {"accuracy": 0.5}, "after": {"accuracy": after},
                       "train_seconds": round(self.work_s / len(METHODS), 2), "trainable_params": 1000,
                       "total_params": 22_713_986, "history": []}
            self.files[f"{self.workdir}/results/{m}/metrics.json"] = (json.dumps(metrics).encode(), mtime)
        log = "scripted training: wrote results/{head,lora,full}/metrics.json\n"
        self.files[f"{self.workdir}/reproduce.log"] = (log.encode(), time.time())
        return ExecResult(returncode=0, stdout=log, duration_s=round(time.monotonic() - t0, 3))


def burn(seconds: float) -> None:
    """Busy CPU work for ``seconds`` (a stand-in for training; sleeping would not load a core)."""
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        for i in range(20_000):
            x = (x * 31 + i) % 1_000_003


def fake_sandboxes(*, run_config: Any, seed: int, paper_id: str, forge_papers: list[str] | tuple = (),
                   work_s: float = 0.0, **_: Any) -> Callable[[str], TrainingFakeSandbox]:
    """The sandbox factory for one run: (role) -> a fresh TrainingFakeSandbox."""
    forge = paper_id in set(forge_papers)

    def factory(role: str) -> TrainingFakeSandbox:
        return TrainingFakeSandbox(run_id=run_config.run_id, seed=seed, forge=forge, work_s=work_s)

    return factory


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
    rubric = json.loads((DEMO_DIR / "rubric.json").read_text())
    for v in range(1, variants + 1):
        r = json.loads(json.dumps(results))
        for i, m in enumerate(METHODS):
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
