"""The smoke job streams while the coding loop waits on it (issue 22): wait_job hands the job's
progress lines to the run's progress callback as they come and keeps a live host copy of its log,
across waits without repeating or losing a byte (local backend: real processes)."""
from __future__ import annotations

import time

import pytest

from agent.plan import Experiment, Plan
from agent.tools import ToolContext, run_tool
from agent.workspace import Workspace
from papers import load_paper
from sandbox import open_sandbox

from .conftest import DEMO_PAPER

TRAIN = '''import sys, time
print("data: 4 train / 2 test sentences", flush=True)
print("epoch 0 step 1/2 loss 0.6931", flush=True)
time.sleep(3)
print("epoch 0 step 2/2 loss 0.5000", flush=True)
print("accuracy after fine-tuning (lora): 0.9000", flush=True)
'''
SCRIPT = 'set -euo pipefail\npython3 train.py --method lora --out "results/lora"\n'


@pytest.fixture
def ctx(tmp_path):
    def factory(role, **kw):
        kw.pop("name", None), kw.pop("reuse", None)
        return open_sandbox("local", run_id="jobs", role=role, **kw)

    events: list[tuple[float, str, dict, str]] = []
    ws = Workspace.open(factory, tmp_path, "jobs")

    def progress(event: str, **data) -> None:
        copy = tmp_path / "logs" / "job-smoke.log"
        events.append((time.monotonic(), event, data, copy.read_text() if copy.exists() else ""))

    plan = Plan(task="t", paper_model="MiniLM", paper_dataset="snippets",
                experiments=[Experiment(id="lora", name="LoRA", recipe="lora")])
    c = ToolContext(ws=ws, plan=plan, paper=load_paper(DEMO_PAPER), run_dir=tmp_path, step=1, call_id="c1", loop={},
                    progress=progress)
    c.events = events  # type: ignore[attr-defined]
    yield c
    ws.close()


def test_wait_job_streams_the_smoke_jobs_progress_lines(ctx, tmp_path):
    run_tool("write_file", {"path": "train.py", "content": TRAIN}, ctx)
    run_tool("write_file", {"path": "reproduce.sh", "content": SCRIPT}, ctx)
    run_tool("start_job", {"name": "smoke", "command": "REPRO_SMOKE=1 bash reproduce.sh"}, ctx)
    first = run_tool("wait_job", {"name": "smoke", "seconds": 2}, ctx)  # returns while the job still runs
    assert first.meta["state"] == "running", first.content
    shown_then = [(e[2]["kind"], e[2].get("step")) for e in ctx.events if e[1] == "progress"]
    done = run_tool("wait_job", {"name": "smoke", "seconds": 60}, ctx)
    returned = time.monotonic()
    assert done.meta["state"] == "succeeded", done.content
    progress = [e for e in ctx.events if e[1] == "progress"]
    evs = [e[2] for e in progress]
    # each line once, across the two waits, named by reproduce.sh's experiment
    assert [(e["kind"], e.get("step")) for e in evs] == [("info", None), ("step", 1), ("step", 2), ("result", None)]
    assert shown_then == [(e["kind"], e.get("step")) for e in evs][:len(shown_then)]
    assert {(e["source"], e["experiment"], e["index"], e["total"]) for e in evs} == {("smoke job", "lora", 1, 1)}
    at, _, step1, copy_then = progress[1]
    assert returned - at > 2.0, "the first step was shown only when the job had ended"
    assert "epoch 0 step 1/2 loss 0.6931" in copy_then  # the host copy had it when it was shown
    # the host copy is the job's log, byte for byte, though it came in two waits
    assert (tmp_path / "logs" / "job-smoke.log").read_bytes() == ctx.ws.sb.read_file(".repro/jobs/smoke/log")
    again = run_tool("wait_job", {"name": "smoke", "seconds": 5}, ctx)
    assert again.meta["state"] == "succeeded" and len([e for e in ctx.events if e[1] == "progress"]) == 4


def test_without_a_progress_callback_wait_job_streams_nothing(ctx, tmp_path):
    ctx.progress = None
    run_tool("start_job", {"name": "quiet", "command": "echo step 1 loss 0.5"}, ctx)
    done = run_tool("wait_job", {"name": "quiet", "seconds": 30}, ctx)
    assert done.meta["state"] == "succeeded" and "step 1 loss 0.5" in done.content
    assert not ctx.events and not (tmp_path / "logs" / "job-quiet.log").exists()
