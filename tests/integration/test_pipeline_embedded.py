"""End to end on the embedded defaults, through the CLI as a user runs it: the real SmolLM2 server
plans, drives the coding agent's tool loop on the guided path and judges; the real Docker sandbox
trains (scaled down) and reproduces. Slow: minutes on 2 cores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_import

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)  # module scope: checked before the module's other fixtures
def _llama_cpp():
    """llama-cpp-python (built by scripts/setup.sh) is a requirement: fails under make test, else skips."""
    need_import("llama_cpp", "llama-cpp-python (built by scripts/setup.sh)")


ROOT = Path(__file__).resolve().parents[2]
VARIANT = ROOT / "papers" / "variant-lora-qv-macro-f1"

# Three leaves, one per category: the point is the whole path on the real model, not a long grading.
SMALL_RUBRIC = {
    "id": "root", "requirements": "The paper has been replicated.", "weight": 1, "task_category": None,
    "finegrained_task_category": None, "sub_tasks": [
        {"id": "code", "requirements": "Code trains a classifier with LoRA.", "weight": 1, "sub_tasks": [],
         "task_category": "Code Development", "finegrained_task_category": None},
        {"id": "exec", "requirements": "reproduce.sh runs the LoRA experiment to completion.", "weight": 1,
         "sub_tasks": [], "task_category": "Code Execution", "finegrained_task_category": None},
        {"id": "result", "requirements": "A LoRA result after fine-tuning is reported.", "weight": 1,
         "sub_tasks": [], "task_category": "Result Analysis", "finegrained_task_category": None},
    ]}


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REPRO_MODEL", "REPRO_SCRIPTED_MODEL")}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _turns(run_dir: Path) -> list[str]:
    """Each turn in one line (menu, reply, results): what a failed assertion needs to be understood
    when the run directory is gone (CI keeps only the output)."""
    lines = []
    for p in sorted((run_dir / "trajectory").glob("*.json")):
        t = json.loads(p.read_text())
        results = [(r["name"], r.get("ok"), r.get("malformed"), r["content"][:160]) for r in t.get("results", [])]
        lines.append(f"{t['turn']} {t.get('menu')} {t.get('finish_reason')} reask={t.get('reask')} "
                     f"temp={t.get('temperature')} text={(t['reply'].get('text') or '')[:200]!r} "
                     f"calls={t['reply'].get('calls')} results={results}")
    return lines


def _checks(run_dir: Path) -> dict:
    """What every embedded run must show: a plan the model shaped, a loop that ended by submitting,
    and verdicts the real judge model gave."""
    plan = json.loads((run_dir / "plan.json").read_text())
    # "a plan the model shaped" only where it keeps a value the model gave, field by field
    stages = [json.loads(p.read_text()) for p in sorted((run_dir / "plan").glob("stage-*.json"))]
    kept = [f for s in stages for f in s["fields"] if f["by"] == "kept"]
    assert kept, ([s["fields"] for s in stages], plan["problems"])
    assert all(f["model"] is not None for f in kept)
    assert plan["plan"]["source"] == "model" and plan["plan"]["fields"]["kept"] == len(kept)
    report = json.loads((run_dir / "report.json").read_text())
    agent = report["agent"]
    assert agent["exit"] == "submitted", (agent, _turns(run_dir))
    assert agent["guided"] == agent["turns"] and agent["turns"] <= 12  # the guided path, step by step
    assert all(f["origin"].startswith("scaffold") for f in agent["files"])
    grade = report["grade"]
    assert grade["coverage"] > 0.5 and grade["leaves"] - grade["invalid_leaves"] > 0  # real verdicts
    assert "smollm2" in json.dumps(report["models"]).lower()
    return report


@pytest.mark.docker
@pytest.mark.timeout(2400)
def test_repro_demo_from_the_cli_at_a_reduced_size(tmp_path, docker_engine):
    runs = tmp_path / "runs"
    proc = _cli("demo", "--runs-dir", str(runs), "--train-limit", "64", "--max-steps", "12", timeout=2300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report_path = Path(proc.stdout.strip().splitlines()[-1])
    assert report_path.name == "report.html" and report_path.is_file()
    assert "checking the paper, rubric, model endpoint, sandbox and disk" in proc.stderr
    report = _checks(report_path.parent)
    # reproduced numbers come from the fresh container's files, next to the paper's
    rows = [r for r in report["comparison"] if r.get("reproduced") and r.get("reported")]
    assert {r["experiment_id"] for r in rows} == {"head", "lora", "full"}
    for r in rows:
        assert (report_path.parent / r["reproduced"]["file"]).is_file()


@pytest.mark.timeout(1800)
def test_repro_run_from_the_cli_with_the_embedded_model(tmp_path):
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps(SMALL_RUBRIC))
    runs = tmp_path / "runs"
    proc = _cli("run", str(VARIANT / "paper.pdf"), "--rubric", str(rubric), "--sandbox", "local", "--runs-dir",
                str(runs), "--max-steps", "8", "--train-limit", "64", timeout=1700)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = list(runs.iterdir())
    report = _checks(run_dir)
    plan = json.loads((run_dir / "plan.json").read_text())["plan"]
    assert [e["recipe"] for e in plan["experiments"]] == ["lora"]
    assert {r["reported"]["column"] for r in report["comparison"] if r["reported"]} >= {"Movie (long) macro-F1"}
