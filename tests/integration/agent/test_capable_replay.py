"""A capable model's recorded trajectory on the bundled variant paper, replayed through the real CLI,
the real OpenAI client, the Docker sandbox, the fresh-container reproduction and the embedded judge.

The trajectory was recorded by being the model (../shared/tools/relay.py, tests/trajectories.py):
it plans the paper's method with recipe "none" and an untrained baseline, states the paper's claims,
writes train.py itself (LoRA on the query and value projections only, macro-F1 on both data files),
smoke-tests it, runs it once and submits. What the researcher reads must follow: the model's plan kept,
both experiments reproduced with macro-F1 on both test sets, the bundled rubric's checks bound to the
model's experiment ids, the claims tested column by column, statuses decided by the claims."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trajectories import Replay

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[3]
PAPER = REPO / "papers" / "variant-lora-qv-macro-f1" / "paper.pdf"
TRAJECTORY = REPO / "tests" / "fixtures" / "trajectories" / "variant-lora-qv-macro-f1.json"
LORA, UNTRAINED = "lora-query-value-r-4", "before-fine-tuning"


def _written_train_py() -> str:
    turns = json.loads(TRAJECTORY.read_text())["turns"]
    return next(c["arguments"]["content"] for t in turns for c in t["response"].get("tool_calls") or []
                if c["name"] == "write_file" and c["arguments"]["path"] == "train.py")


@pytest.mark.timeout(1800)  # the whole run, two fresh containers and the embedded judge: ~3 min alone
def test_a_capable_models_recorded_run_on_the_variant_paper_replays_to_an_honest_report(tmp_path, docker_engine):
    env = {**os.environ, "REPRO_ASSETS": "offline"}
    env.pop("OPENAI_API_KEY", None)
    with Replay(TRAJECTORY) as replay:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "repro"), "run", str(PAPER), "--model", "any", "--base-url", replay.url,
             "--judge-model", "embedded", "--assets", "offline", "--runs-dir", str(tmp_path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert replay.errors == [], replay.errors
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert replay.served == len(replay.turns)  # every recorded answer was asked for, none more
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    report = json.loads((run / "report.json").read_text())
    plan = json.loads((run / "plan.json").read_text())["plan"]

    # the model's plan is kept: its two experiments, no recipe (it writes the code), its claims
    assert [(e["id"], e["recipe"]) for e in plan["experiments"]] == [(LORA, None), (UNTRAINED, None)]
    assert [(c["kind"], c["source"]) for c in plan["claims"]] == [("comparative", "model"), ("absolute", "model")]
    # the code is the model's, not a scaffold's
    assert (run / "submission" / "train.py").read_text() == _written_train_py()
    assert "scaffold" not in json.dumps([t["response"] for t in json.loads(TRAJECTORY.read_text())["turns"]])

    # both experiments report macro-F1 on both data files, from the fresh-container run
    results = json.loads((run / "reproduction.json").read_text())["results"]
    for eid in (LORA, UNTRAINED):
        assert {"macro_f1_movie", "macro_f1_amazon"} <= set(results[eid]["metrics"]), results[eid]
    assert results[LORA]["metrics"]["macro_f1_movie"] > results[LORA]["before"]["macro_f1_movie"] + 0.1

    # the bundled rubric names the experiment "lora": its checks are bound to the model's id
    checks = report["grade"]["checks"]
    parts = [p for c in checks for p in c["parts"]]  # three leaves; "on both test sets" has two checks
    assert (len(checks), len(parts)) == (3, 4) and {p["experiment"] for p in parts} == {LORA}
    assert all(c["passed"] for c in checks), [c["arithmetic"] for c in checks]
    assert any("bound to the plan's 'lora-query-value-r-4'" in w for w in report["grade"]["rubric_warnings"])

    # the claims, tested on our numbers column by column; the paper's own setup, so the absolute one too
    claims = {c["id"]: c for c in report["paper_claims"]}
    assert claims["C1"]["verdict"] == "replicated"
    assert [c["column"] for c in claims["C1"]["columns"]] == ["Movie (long) macro-F1", "Amazon macro-F1"]
    assert claims["C2"]["verdict"] != "not comparable" and len(claims["C2"]["columns"]) == 2
    status = {e["id"]: e for e in report["experiments"]}
    assert all(status[e]["status"] and status[e]["reason"] for e in (LORA, UNTRAINED))
    md = (run / "report.md").read_text()
    assert "tested on the reproduction's numbers" in md and "Amazon macro-F1" in md

