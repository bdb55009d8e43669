"""The coding agent's tool loop: host overhead per step, and tokens per step, measured in one run.

    python bench/loop.py [--steps 40] [--sandbox docker]

1. Overhead per step. The same command (`true`) in the same workspace container, alternately
   (A B A B ...): A is a bare exec through the Docker SDK (what `docker exec` costs); B is a whole
   tool step as the loop runs it — argument validation, the in-sandbox runner (process group,
   marker, head/tail capture, full log), and the sync of the workspace to the host (manifest,
   changed files, snapshot). Reported: medians and their ratio, plus the sync alone.
2. Tokens per step. A scripted coding session (write the model, write reproduce.sh, a failing
   smoke run, the fix, a smoke job, wait, submit) through the real loop: every prompt the loop
   builds is counted with o200k_base (bpe_openai) — the prompt a real model would be sent.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bpe_openai import get_encoding  # noqa: E402

from agent.config import Budgets, ModelConfig, RunConfig  # noqa: E402
from agent.plan import Experiment, Plan  # noqa: E402
from agent.runner import execute_run  # noqa: E402
from agent.scripted import FileScriptedModel  # noqa: E402
from agent.tools import ToolContext, run_tool  # noqa: E402
from agent.workspace import Workspace  # noqa: E402
from papers import load_paper  # noqa: E402
from sandbox import open_sandbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "agent"))
from conftest import script  # noqa: E402  (the scripted coding session the tests use)


def overhead(steps: int, backend: str, tmp: Path) -> None:
    def factory(role, **kw):
        if backend != "docker":
            kw.pop("name", None), kw.pop("reuse", None)
        return open_sandbox(backend, run_id="bench-loop", role=role, **kw)

    tmp.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(factory, tmp, "bench-loop")
    paper = load_paper(DEMO)
    plan = Plan(task="t", paper_model="m", paper_dataset="d", experiments=[Experiment(id="x", name="x")])
    ctx = ToolContext(ws=ws, plan=plan, paper=paper, run_dir=tmp, step=0, call_id="c", loop={})
    run_tool("write_file", {"path": "train.py", "content": "print(1)\n" * 50}, ctx)
    ws.sync(step=0)
    bare, step, sync = [], [], []
    try:
        for i in range(steps):
            t0 = time.perf_counter()
            if backend == "docker":
                ws.sb._api.exec_start(ws.sb._api.exec_create(ws.sb.container.id, ["true"], user=ws.sb.policy.user)["Id"])
            else:
                ws.sb.exec(["true"], timeout=30)
            bare.append(time.perf_counter() - t0)
            ctx.call_id, ctx.step = f"c{i}", i + 1
            t0 = time.perf_counter()
            r = run_tool("bash", {"command": "true"}, ctx)
            t1 = time.perf_counter()
            ws.sync(step=i + 1)
            t2 = time.perf_counter()
            assert r.ok, r.content
            step.append(t2 - t0)
            sync.append(t2 - t1)
    finally:
        ws.close()
    b, s, y = (statistics.median(v) * 1000 for v in (bare, step, sync))
    print(f"overhead per step ({steps} each, interleaved, {backend}): bare exec {b:.1f} ms, tool step with sync "
          f"{s:.1f} ms (sync alone {y:.1f} ms) -> {s / b:.2f}x a bare exec; host overhead {s - b:.1f} ms per step")


class Counting(FileScriptedModel):
    """The scripted agent, counting what a real model would be sent (o200k tokens per prompt)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.enc = get_encoding("o200k_base")
        self.turns: list[int] = []

    def complete(self, messages, *, schema=None, tools=None, **kw):
        if tools is not None:
            text = json.dumps(messages) + json.dumps(tools)
            self.turns.append(len(self.enc.encode(text)))
        return super().complete(messages, schema=schema, tools=tools, **kw)


def tokens(backend: str, tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "script.json"
    path.write_text(json.dumps(script()))
    model = Counting(path)
    scripted = ModelConfig(model="scripted", base_url="http://127.0.0.1:9/v1")
    cfg = RunConfig(run_id=f"bench-tokens-{int(time.time())}", runs_dir=tmp / "runs", paper_path=DEMO,
                    sandbox_backend=backend, agent_model=scripted, judge_model=scripted, guide="off",
                    budgets=Budgets(max_steps=20))
    state = execute_run(cfg, model=model)
    assert state["loop"]["exit"] == "submitted", state["loop"]
    t = model.turns
    print(f"tokens per step (o200k, the prompt of each of {len(t)} turns of a scripted session): mean {statistics.mean(t):.0f}, "
          f"first {t[0]}, last {t[-1]}, max {max(t)}; the whole loop {sum(t)} prompt tokens")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sandbox", default="docker", choices=["docker", "local"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="repro-bench-loop-") as d:
        overhead(a.steps, a.sandbox, Path(d) / "overhead")
        tokens(a.sandbox, Path(d) / "tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
