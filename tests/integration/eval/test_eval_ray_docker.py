"""`repro eval` on its default sandbox backend, Docker, as Ray tasks: killed mid-way, resumed,
and nothing of either run left in the engine afterwards.

One paper × one seed × two configurations (``fast``, then ``slow``: ``--parallel 1`` runs them in
that order), scripted models, real hardened containers. The driver is SIGKILLed while the second
run's reproduction runs in its container (the scripted model burns a few seconds there); the
container outlives the kill; the rerun resumes that run from its checkpoint, reaps the orphan, and
at the end no container or volume with either run's label exists (asked through the Docker SDK).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agent.eval.config import load_eval_configs
from agent.eval.doubles import make_demo_papers

pytestmark = pytest.mark.docker

PAPER = "demo-minilm-sentiment"
CONFIG_YAML = """\
name: {name}
model_factory: agent.eval.doubles:scripted_models
factory_args: {{skill: 0.7, work_s: {work_s}}}
run:
  sandbox_backend: docker
  train_limit: 100
  epochs: 1
  budgets: {{max_model_tokens: 200000, max_wall_s: 600}}
resources: {{num_cpus: 1}}
"""


def _containers(run_id: str, role: str | None = None) -> list[str]:
    from sandbox.docker import list_ours
    from sandbox.policy import LABEL_ROLE

    found, _ = list_ours(run_id)  # filtered by the run-id label, through the SDK
    return [c.name for c in found if role is None or (c.labels or {}).get(LABEL_ROLE) == role]


def test_eval_on_docker_sandboxes_kill_resume_leaves_nothing(tmp_path, docker_engine):
    from sandbox.docker import list_ours

    papers = tmp_path / "paperset"
    make_demo_papers(papers, variants=0)
    cfgs = []
    for name, work_s in (("fast", 0), ("slow", 6)):  # slow: its full reproduction runs about 6 s
        p = tmp_path / f"{name}.yaml"
        p.write_text(CONFIG_YAML.format(name=name, work_s=work_s))
        cfgs.append(p)
    fast, slow = (f"{PAPER}--{c.config_id}--s0--a1" for c in load_eval_configs(cfgs))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "agent.cli", "eval", str(papers), "--seeds", "1", "--parallel", "1",
           "--out", str(out), "--json", "--progress-every", "1"]
    for c in cfgs:
        cmd += ["--config", str(c)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRO_TEST_")}

    # 1. The first driver: kill it (SIGKILL) once `fast` is done and `slow` is reproducing.
    log = (tmp_path / "driver1.log").open("w")
    driver = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert driver.poll() is None, f"driver exited early: {(tmp_path / 'driver1.log').read_text()[-3000:]}"
            try:
                tree |= {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
            except psutil.Error:
                pass
            if (out / "runs" / fast / "eval.json").exists() and _containers(slow, "reproduce"):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"`slow` never reached its reproduction: {(tmp_path / 'driver1.log').read_text()[-3000:]}")
        time.sleep(1)  # reproduce.sh is running in the container now
        tree |= {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        for pid in tree:  # the local Ray instance's processes (and the run's worker): ours, by pid
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        psutil.wait_procs([psutil.Process(x) for x in tree if psutil.pid_exists(x)], timeout=20)
        log.close()
    assert not (out / "runs" / slow / "eval.json").exists(), "the kill landed after `slow` finished"
    assert _containers(slow, "reproduce"), "the orphaned reproduction container is gone already"
    assert list_ours(fast) == ([], []), "the finished run left containers or volumes"
    done_before = (out / "runs" / fast / "eval.json").read_bytes()

    # 2. Rerun: `fast` is skipped, `slow` resumes from its checkpoint in the same directory.
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["skipped_done"], summary["ran"], summary["resumed"]) == (1, 1, 1), summary
    assert summary["ran_run_ids"] == [slow] and summary["outcomes"] == {"done": 1}, summary
    ev = json.loads((out / "runs" / slow / "eval.json").read_text())
    assert ev["status"] == "done" and ev["resumed"] is True, ev
    assert (out / "runs" / fast / "eval.json").read_bytes() == done_before
    rep = json.loads((out / "runs" / slow / "report.json").read_text())
    assert rep["status"] == "done" and rep["reproduction"]["results"], rep.get("reproduction")
    assert "docker" in json.dumps(rep["environment"]).lower()

    # 3. Nothing of either run is left in the engine: no container, no volume.
    for run_id in (fast, slow):
        assert list_ours(run_id) == ([], []), f"{run_id} left {list_ours(run_id)}"
