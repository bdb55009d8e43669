"""The reproduction streams (issue 22, "progress you can see"): while reproduce.sh runs in its fresh
sandbox, reproduction/reproduce.log grows and the recipe's progress lines reach ``on_progress`` —
long before the script ends, on the local backend and in a real container."""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from graders.reproduce import LOG_NAME, reproduce
from sandbox import open_sandbox

TRAIN = '''import json, os, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
print("data: 10 train / 5 test sentences", flush=True)
print("accuracy before fine-tuning: 0.5000", flush=True)
print("epoch 0 step 1/2 loss 0.6931", flush=True)
time.sleep(3)
print("epoch 0 step 2/2 loss 0.5000", flush=True)
os.makedirs(out, exist_ok=True)
json.dump({"metrics": {"accuracy": 0.9}, "before": {"accuracy": 0.5}}, open(os.path.join(out, "metrics.json"), "w"))
print("accuracy after fine-tuning (head): 0.9000", flush=True)
'''
SCRIPT = 'set -euo pipefail\npython train.py --method head --out "results/head"\n'


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def factory(request, tmp_path):
    backend = request.param
    run_id = f"stream-{uuid.uuid4().hex[:8]}"
    if backend == "docker":
        request.getfixturevalue("docker_engine")
    yield lambda role: open_sandbox(backend, run_id=run_id, role=role, log_dir=tmp_path / "logs")
    if backend == "docker":
        from sandbox.docker import reap

        reap(run_id)


@pytest.fixture
def submission(tmp_path) -> Path:
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "train.py").write_text(TRAIN)
    (sub / "reproduce.sh").write_text(SCRIPT)
    return sub


def test_the_log_grows_while_reproduce_sh_runs(factory, submission, tmp_path):
    out = tmp_path / "reproduction"
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                if b"step 1/2" in (out / LOG_NAME).read_bytes():
                    seen.setdefault("first", time.monotonic())
            except OSError:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        rep = reproduce(submission, out, factory, timeout=300)
    finally:
        ended = time.monotonic()
        stop.set()
        watcher.join()
    assert rep.ok, (out / LOG_NAME).read_text()
    assert "first" in seen, "reproduce.log held nothing while the script ran"
    assert ended - seen["first"] > 2.0, f"the first line reached the log only {ended - seen['first']:.2f}s before the end"
    log = (out / LOG_NAME).read_text()
    assert log.startswith("data: 10 train") and log.rstrip().endswith("accuracy after fine-tuning (head): 0.9000")
    assert rep.results["head"]["metrics"] == {"accuracy": 0.9}


def test_progress_lines_arrive_as_they_come(factory, submission, tmp_path):
    out = tmp_path / "reproduction"
    got: list[tuple[float, dict, str]] = []

    def on_progress(ev: dict) -> None:
        got.append((time.monotonic(), ev, (out / LOG_NAME).read_text()))

    rep = reproduce(submission, out, factory, timeout=300, on_progress=on_progress, throttle_s=0)
    ended = time.monotonic()
    assert rep.ok
    kinds = [(ev["kind"], ev["experiment"], ev["index"], ev["total"]) for _, ev, _ in got]
    assert kinds == [("info", "head", 1, 1), ("result", "head", 1, 1), ("step", "head", 1, 1), ("step", "head", 1, 1),
                     ("result", "head", 1, 1)], kinds
    at, first_step, log_then = next(x for x in got if x[1]["kind"] == "step")
    assert (first_step["step"], first_step["steps"], first_step["loss"]) == (1, 2, 0.6931)
    assert ended - at > 2.0, f"the first step came {ended - at:.2f}s before the end: not streamed"
    assert "epoch 0 step 1/2 loss 0.6931" in log_then  # already in reproduce.log when it was shown
    assert 0 <= first_step["elapsed_s"] < ended - at + 60
