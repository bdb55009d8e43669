"""The coding agent's tools on a real workspace (local backend: real processes, no Docker), and the
one place their schemas are written down."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from agent.plan import Experiment, Plan
from agent.tools import ToolContext, run_tool
from agent.tools.specs import SPECS, docs_markdown, tool_schema, tool_schemas
from agent.workspace import Workspace
from papers import load_paper
from sandbox import open_sandbox

from .conftest import DEMO_PAPER
from papers.demo import table1

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def paper():
    return load_paper(DEMO_PAPER)


@pytest.fixture
def ctx(tmp_path, paper):
    def factory(role, **kw):
        kw.pop("name", None), kw.pop("reuse", None)
        return open_sandbox("local", run_id="tools", role=role, **kw)

    ws = Workspace.open(factory, tmp_path, "tools")
    plan = Plan(task="t", paper_model="MiniLM", paper_dataset="snippets",
                experiments=[Experiment(id="lora", name="LoRA", recipe="lora")])
    c = ToolContext(ws=ws, plan=plan, paper=paper, run_dir=tmp_path, step=1, call_id="c1", loop={})
    yield c
    ws.close()


def run(ctx, tool, **args):
    return run_tool(tool, args, ctx)


def test_docs_are_generated_from_the_specs():
    assert (ROOT / "docs" / "tools.md").read_text() == docs_markdown(), "run: python -m agent.tools.specs > docs/tools.md"
    names = [t["name"] for t in tool_schemas()]
    assert names == list(SPECS) and len(names) == 17
    bash = tool_schema("bash")
    assert bash["parameters"]["properties"]["timeout"]["maximum"] == 600
    assert bash["parameters"]["required"] == ["command"] and "description" not in bash["parameters"]
    narrowed = tool_schema("scaffold", narrow={"recipe": ["lora"]})
    assert narrowed["parameters"]["properties"]["recipe"]["enum"] == ["lora"]


def test_bad_arguments_are_malformed_with_the_reason(ctx):
    r = run(ctx, "bash", cmd="ls")
    assert r.malformed and "bad arguments for bash" in r.content and "command" in r.content
    r = run(ctx, "bash", command="ls", timeout=601)
    assert r.malformed and "less than or equal to 600" in r.content
    r = run(ctx, "teleport")
    assert r.malformed and "no tool named 'teleport'" in r.content


def test_files_write_read_paged_search_and_exact_edits(ctx):
    body = "\n".join(f"line {i}" for i in range(1, 301)) + "\n"
    assert run(ctx, "write_file", path="src/a.py", content=body).content.startswith("wrote src/a.py (300 lines")
    page = run(ctx, "read_file", path="src/a.py", offset=100, limit=3).content
    assert page.splitlines()[:3] == ["  100  line 100", "  101  line 101", "  102  line 102"]
    assert "[lines 100-102 of 300; read on with offset=103]" in page
    assert "past the end" in run(ctx, "read_file", path="src/a.py", offset=400).content
    assert "no such file" in run(ctx, "read_file", path="nope.py").content
    hits = run(ctx, "search", pattern=r"line 29\d$", path="src").content.splitlines()
    assert hits[0] == "src/a.py:290: line 290" and len(hits) == 10
    assert run(ctx, "search", pattern="(", path=".").malformed
    missing = run(ctx, "edit_file", path="src/a.py", old="line 1000", new="x")
    assert not missing.ok and "does not occur" in missing.content and "closest line is: 'line 100'" in missing.content
    once = run(ctx, "edit_file", path="src/a.py", old="line 1\n", new="first\n")  # exact: not "line 11\n"
    assert once.ok and "at line 1 (1 line(s) replaced by 1)" in once.content
    dup = run(ctx, "edit_file", path="src/a.py", old="line 2", new="y")
    assert not dup.ok and "occurs" in dup.content and "times" in dup.content
    ok = run(ctx, "edit_file", path="src/a.py", old="line 299\n", new="line 299 edited\n")
    assert ok.ok and "at line 299 (1 line(s) replaced by 1)" in ok.content
    assert "line 299 edited" in ctx.ws.read_text("src/a.py")
    assert run(ctx, "write_file", path="../escape.py", content="x").content.startswith("error:")


def test_bash_output_is_head_and_tail_with_the_log_and_timeouts_kill_everything(ctx):
    r = run(ctx, "bash", command="seq 1 200000")
    assert r.ok and r.content.startswith("1\n2\n3") and "199999\n200000" in r.content
    assert "bytes elided: the whole output is in .repro/logs/c1.log" in r.content
    assert len(r.content) < 11_000 and r.meta["bytes"] == len("\n".join(map(str, range(1, 200001)))) + 1
    assert ctx.ws.read_text(".repro/logs/c1.log").count("\n") == 200000  # the full log is there
    t0 = time.monotonic()
    ctx.call_id = "c2"
    r = run(ctx, "bash", command="setsid sleep 500 & (sleep 501 &) ; sleep 502", timeout=2)
    assert r.meta["timed_out"] and "timed out after 2 s" in r.content and time.monotonic() - t0 < 15
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("sleep 50")]
    assert left == []  # the group and every marked process are gone
    ctx.call_id = "c3"
    r = run(ctx, "bash", command="sleep 503 & echo started")
    assert "background process(es) it left were stopped" in r.content and "start_job" in r.content


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_jobs_are_idempotent_by_name_and_waitable(ctx):
    r = run(ctx, "start_job", name="train", command="echo step 1; sleep 1; echo step 2")
    assert "started job 'train'" in r.content and r.updates["job_files"]["train"] is None
    again = run(ctx, "start_job", name="train", command="echo other")
    assert "exists already" in again.content and "give the job a new name" in again.content
    done = run(ctx, "wait_job", name="train", seconds=30)
    assert "job train: succeeded (exit code 0)" in done.content and "step 2" in done.content
    assert done.meta["state"] == "succeeded"
    assert ctx.ws.read_text(".repro/jobs/train/log").count("[job train started") == 1
    run(ctx, "start_job", name="long", command="sleep 300")
    assert ctx.ws.running_jobs() == ["long"]
    refused = run(ctx, "submit", note="x")
    assert not refused.ok and "still run" in refused.content
    stopped = run(ctx, "stop_job", name="long")
    assert "job long: stopped" in stopped.content and ctx.ws.running_jobs() == []
    assert "no job named 'ghost'" in run(ctx, "job_status", name="ghost").content


def test_submit_needs_reproduce_sh_and_a_smoke_run_of_these_files(ctx):
    assert "no reproduce.sh" in run(ctx, "submit", note="x").content
    run(ctx, "write_file", path="reproduce.sh", content="echo hi\n")
    ctx.ws.sync(step=1)
    assert "has not had a smoke run" in run(ctx, "submit", note="x").content
    from agent.tools import manifest_hash

    ctx.loop["smoke"] = {"passed": True, "files": manifest_hash(ctx.ws.manifest)}
    assert run(ctx, "submit", note="done").updates["submitted"]["note"] == "done"
    # the notes the prompt asks the agent to keep current change nothing reproduce.sh runs
    run(ctx, "write_file", path="NOTES.md", content="- smoke passed; submitting\n")
    ctx.ws.sync(step=2)
    assert "NOTES.md" in ctx.ws.manifest and run(ctx, "submit", note="done").updates["submitted"]
    run(ctx, "write_file", path="reproduce.sh", content="echo changed\n")
    ctx.ws.sync(step=2)
    assert "changed since the last smoke run" in run(ctx, "submit", note="x").content
    ctx.nearly_spent = True  # the budget is nearly spent: a submission is better than none
    forced = run(ctx, "submit", note="out of time")
    assert forced.updates["submitted"]["forced"] and "without a passing smoke run" in forced.content


def test_scaffold_writes_a_recipe_and_records_it(ctx):
    r = run(ctx, "scaffold", recipe="lora", experiment="lora")
    assert r.ok and set(r.meta["files"]) == {"train.py", "reproduce.sh", "README.md"}
    assert 'python train.py --method lora --out "results/lora"' in ctx.ws.read_text("reproduce.sh")
    assert r.updates["scaffolded"]["train.py"]["recipes"] == ["lora"]
    assert run(ctx, "scaffold", recipe="no-such-recipe", experiment="lora").malformed
    assert "no experiment 'nope'" in run(ctx, "scaffold", recipe="lora", experiment="nope").content


def test_paper_lookups_carry_their_page(ctx):
    t = run(ctx, "paper_table", id="1").content
    assert t.startswith("Table 1 (page 1)") and "LoRA" in t and f"{table1()['lora']:g}" in t
    assert "the paper's tables are: Table 1 (p. 1)" in run(ctx, "paper_table", id="Table 9").content
    s = run(ctx, "paper_search", text="rank r").content
    assert "p. 1" in s and "rank" in s.lower()
    sec = run(ctx, "paper_section", name="data").content
    assert sec.startswith("## ") and "(page 1)" in sec
    assert "The sections are:" in run(ctx, "paper_section", name="zzz").content


def test_sync_keeps_a_host_copy_and_snapshots_without_outputs(ctx, tmp_path):
    run(ctx, "write_file", path="train.py", content="print(1)\n")
    run(ctx, "bash", command="mkdir -p results/x checkpoints && echo 1 > results/x/metrics.json && echo 2 > checkpoints/w")
    changes = ctx.ws.sync(step=3)
    assert changes["added"] == ["train.py"]
    assert (tmp_path / "submission" / "train.py").read_text() == "print(1)\n"
    assert not (tmp_path / "submission" / "results").exists() and not (tmp_path / "submission" / "checkpoints").exists()
    snap = json.loads((tmp_path / "steps" / "0003.json").read_text())["files"]
    sha = snap["train.py"]
    assert (tmp_path / "blobs" / sha[:2] / sha).read_text() == "print(1)\n"
    run(ctx, "bash", command="rm train.py")
    assert ctx.ws.sync(step=4)["removed"] == ["train.py"] and not (tmp_path / "submission" / "train.py").exists()
