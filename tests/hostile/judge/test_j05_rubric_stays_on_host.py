"""J05 in real containers: the rubric is on the host's run dir, and neither the fresh reproduction
container nor an agent-role container can find a rubric file or the rubric's text anywhere in its
filesystem. The host-only check (the submission holds no rubric) cannot see a mount or an image
that carries it; these searches do."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from graders.reproduce import reproduce
from graders.rubric import load_rubric, save_rubric
from sandbox import open_sandbox

pytestmark = [pytest.mark.docker]

SEARCH = Path(__file__).with_name("search_for_rubric.py")
# New each session: only this run's rubric can hold it, never the image or an earlier run by chance.
CANARY = f"j05-rubric-canary-{uuid.uuid4().hex}"
NEEDLE = base64.b64encode(CANARY.encode()).decode()
# What the search plants in the sandbox's own /tmp: it must find these, and nothing else.
CONTROL = {"names": ["/tmp/j05-control/rubric.json"], "hits": ["/tmp/j05-control/planted.txt"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory, docker_engine):
    """A run dir laid out as the pipeline lays it: the rubric saved where the grade node keeps it,
    and a submission whose reproduce.sh searches the sandbox and writes what it found."""
    from sandbox.image import ensure_image

    ensure_image()
    run_id = f"j05-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path_factory.mktemp("runs") / run_id
    (run_dir / "submission").mkdir(parents=True)
    save_rubric(load_rubric({
        "id": "root", "requirements": f"Replicate the paper ({CANARY})", "weight": 1,
        "task_category": None, "finegrained_task_category": None, "sub_tasks": [
            {"id": "a", "requirements": f"train.py fine-tunes with LoRA ({CANARY})", "weight": 1,
             "sub_tasks": [], "task_category": "Code Development", "finegrained_task_category": None}]}),
        run_dir / "rubric.json")
    shutil.copy(SEARCH, run_dir / "submission" / "search.py")
    (run_dir / "submission" / "reproduce.sh").write_text(f"python search.py {NEEDLE} found.json /\n")
    yield run_id, run_dir
    from sandbox.docker import reap

    reap(run_id)  # a failed test leaves no container behind


def _factory(run_id: str, run_dir: Path):
    # The call agent.runner.sandbox_factory makes for a docker run.
    return lambda role: open_sandbox("docker", run_id=run_id, role=role, log_dir=run_dir / "logs")


def _nothing_but_the_control(found: dict) -> None:
    assert {k: found[k] for k in CONTROL} == CONTROL
    assert found["files"] > 5000, found  # the image's Python and libraries were searched too


def test_host_run_dir_holds_the_rubric_and_the_search_finds_it(run):
    """The control: on the host the same search finds the rubric by name and by text."""
    _, run_dir = run
    out = run_dir.parent / "host-found.json"
    subprocess.run([sys.executable, str(SEARCH), NEEDLE, str(out), str(run_dir)], check=True, timeout=60)
    found = json.loads(out.read_text())
    assert (found["names"], found["hits"]) == ([str(run_dir / "rubric.json")], [str(run_dir / "rubric.json")])


def test_reproduction_container_sees_no_rubric(run):
    run_id, run_dir = run
    rep = reproduce(run_dir / "submission", run_dir / "reproduction", _factory(run_id, run_dir), timeout=600)
    assert rep.ok, (run_dir / "reproduction" / "reproduce.log").read_text()[-2000:]
    _nothing_but_the_control(json.loads((run_dir / "reproduction" / "found.json").read_text()))


def test_agent_container_sees_no_rubric(run):
    run_id, run_dir = run
    with _factory(run_id, run_dir)("agent") as sb:
        sb.copy_in(run_dir / "submission")  # what the execute node hands the agent's sandbox
        r = sb.exec(["python", "search.py", NEEDLE, "found.json", "/"], timeout=600, cwd=sb.workdir)
        assert r.ok, r.summary()
        _nothing_but_the_control(json.loads(sb.read_file("found.json")))
