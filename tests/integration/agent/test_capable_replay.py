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


@pytest.mark.timeout(2400)  # two trainings, the smoke run and a fresh container, the judge: ~2-10 min alone
def test_a_capable_model_that_writes_the_adapters_papers_method_replays_to_an_honest_report(tmp_path, docker_engine):
    """The adapters paper (../shared/papers/real), on the forced small setup (MiniLM, movie snippets,
    200 sentences, one epoch): the model plans the paper's method first with recipe "none" and full
    fine-tuning on its recipe, writes the bottleneck adapters itself, maps its accuracy to the SST
    column and submits. The absolute claim is not comparable on this setup; the comparison is tested
    on our numbers; every experiment has a status and a reason."""
    from tests.conftest import need_shared

    pdf = need_shared("papers/real/adapters-houlsby-1902.00751.pdf")
    trajectory = REPO / "tests" / "fixtures" / "trajectories" / "adapters-houlsby-1902.00751.json"
    env = {**os.environ, "REPRO_ASSETS": "offline"}
    env.pop("OPENAI_API_KEY", None)
    with Replay(trajectory) as replay:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "repro"), "run", str(pdf), "--model", "any", "--base-url", replay.url,
             "--judge-model", "embedded", "--assets", "offline", "--runs-dir", str(tmp_path), "--train-limit", "200",
             "--epochs", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=2300)
    assert replay.errors == [], replay.errors
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert replay.served == len(replay.turns)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    report = json.loads((run / "report.json").read_text())
    plan = json.loads((run / "plan.json").read_text())["plan"]
    assert [(e["id"], e["recipe"]) for e in plan["experiments"]] == [("adapters-64", None), ("full", "full")]
    written = next(c["arguments"]["content"] for t in replay.turns for c in t["response"].get("tool_calls") or []
                   if c["name"] == "write_file" and c["arguments"]["path"] == "train.py")
    assert (run / "submission" / "train.py").read_text() == written and "class Adapter" in written
    results = json.loads((run / "reproduction.json").read_text())["results"]
    assert set(results) == {"adapters-64", "full"}
    assert all(r["reproduces"]["accuracy"]["target"] == "T2" for r in results.values())
    claims = {c["id"]: c for c in report["paper_claims"]}
    assert claims["C2"]["verdict"] == "not comparable"  # 94.2 on SST-2 is no target for MiniLM on snippets
    assert [t["column"] for t in claims["C1"]["cells"]] == ["SST", "SST"] and claims["C1"]["numbers"]
    # the comparison's verdict follows from our numbers: two models that learned nothing are not "within"
    after = {e: results[e]["metrics"]["accuracy"] for e in results}
    learned = {e: results[e]["metrics"]["accuracy"] > results[e]["before"]["accuracy"] for e in results}
    if not any(learned.values()):
        assert claims["C1"]["verdict"] == "inconclusive" and "neither experiment improved" in claims["C1"]["why"]
    else:
        close = abs(after["adapters-64"] - after["full"]) * 100 <= 1.0
        assert claims["C1"]["verdict"] == ("replicated" if close else "not replicated"), claims["C1"]
    assert all(e["status"] and e["reason"] for e in report["experiments"])
    # the model's "SST-2" kept (the paper writes "SST"); the substitution it meets, a deviation
    assert plan["paper_dataset"] == "SST-2" and any(d["paper"] == "SST-2" for d in plan["deviations"])
    # the run's own files decide Code Execution: both experiments wrote their accuracy
    ran = [c for c in report["grade"]["checks"] if "every planned experiment" in c["requirements"]]
    assert len(ran) == 1 and ran[0]["passed"] and {p["experiment"] for p in ran[0]["parts"]} == set(results)
    assert not [e for e in report["experiments"] if e["status"] == "replicated" and
                not any(c["verdict"] == "replicated" for c in report["paper_claims"] if e["id"] in c["experiments"])]
