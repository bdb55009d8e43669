"""Unit tests of `repro eval`'s parts: configs, task states, honesty rules, statistics, rendering."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent.eval.config import EvalConfig, EvalConfigError, load_eval_configs
from agent.eval.honesty import OFFLINE, blacklist_check, marker_check, rescore, zero_category
from agent.eval.leaderboard import build_leaderboard, mean_sem, run_row
from agent.eval.render import render_csv, render_html, render_md
from agent.eval.tasks import PaperEntry, Task, TaskState, discover_papers, plan_tasks, scan
from agent.eval.worker import run_task
from graders.files import write_json
from tests.conftest import need_import


# ---------------------------------------------------------------- helpers
def leaf(cat: str, score: float, weight: float = 1, valid: bool = True) -> dict:
    return {"id": f"{cat}-{score}-{weight}", "requirements": f"{cat} leaf", "weight": weight, "score": score,
            "valid_score": valid, "task_category": cat, "explanation": "", "judge_metadata": None, "sub_tasks": []}


def tree(ra_score: float = 1.0) -> dict:
    return {"id": "root", "requirements": "replicated", "weight": 1, "score": 0, "valid_score": True,
            "task_category": None, "explanation": "", "judge_metadata": None,
            "sub_tasks": [leaf("Code Development", 1.0, 2), leaf("Code Execution", 0.0, 1),
                          leaf("Result Analysis", ra_score, 1)]}


def report(tree_: dict | None, *, results: int = 3, stale: int = 0, status: str = "done", cost=None) -> dict:
    grade = None
    if tree_ is not None:
        g = rescore(tree_)
        grade = {"score": g["score"], "coverage": g["coverage"], "by_category": g["by_category"]}
    rep = {"start_time": 100.0, "results": {f"m{i}": {} for i in range(results)},
           "ignored": [f"results/m{i}/metrics.json: written before the reproduction started" for i in range(stale)]}
    return {"status": status, "grade": grade, "graded_tree": tree_, "reproduction": rep,
            "cost": cost or {"agent_tokens": 100, "judge_tokens": 50, "dollars": 0.01, "wall_s": 10.0,
                             "sandbox_s": 4.0}, "environment": {}}


def cfg(name: str = "base", **kw) -> EvalConfig:
    return EvalConfig(name=name, run={"sandbox_backend": "fake"}, **kw)


def paper(tmp: Path, pid: str = "p1", blacklist=()) -> PaperEntry:
    return PaperEntry(paper_id=pid, dir=tmp, pdf=tmp / "paper.pdf", rubric=None, blacklist=tuple(blacklist))


def finished_run(runs: Path, task: Task, rep: dict | None, status: str = "done") -> Path:
    d = runs / task.run_id
    d.mkdir(parents=True)
    if rep is not None:
        write_json(d / "report.json", rep)
        (d / "report.html").write_text("<html></html>")
        (d / "report.md").write_text("# report")
    write_json(d / "eval.json", {"run_id": task.run_id, "status": status, "cause": None if status == "done"
                                 else "boom", "attempt": task.attempt, "task_wall_s": 1.0})
    return d


# ---------------------------------------------------------------- statistics
def test_mean_sem_matches_textbook():
    s = mean_sem([0.2, 0.4, 0.9])
    assert s["mean"] == pytest.approx(0.5)
    assert s["sem"] == pytest.approx(math.sqrt(((0.3**2) + (0.1**2) + (0.4**2)) / 2) / math.sqrt(3))
    assert mean_sem([0.7]) == {"mean": 0.7, "sem": None, "n": 1}
    assert mean_sem([])["mean"] is None


# ---------------------------------------------------------------- configs
def test_config_files_validate_and_fingerprint(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("name: fast\nrun: {sandbox_backend: local, epochs: 1}\nresources: {num_cpus: 2, memory_gb: 3}\n")
    two = tmp_path / "two.yaml"
    two.write_text("configs:\n  - {name: x, run: {train_limit: 10}}\n  - {name: y, agent_model: {model: m}}\n")
    configs = load_eval_configs([a, two])
    assert [c.name for c in configs] == ["fast", "x", "y"]
    assert configs[0].resources.ray_options() == {"num_cpus": 2.0, "num_gpus": 0.0, "memory": 3 * 2**30}
    assert configs[1].fingerprint != EvalConfig(name="x", run={"train_limit": 11}).fingerprint
    assert configs[1].fingerprint == EvalConfig(name="x", run={"train_limit": 10}, description="d").fingerprint
    rc = configs[0].run_config(run_id="r", runs_dir=tmp_path, paper_path=tmp_path / "p.pdf", rubric_path=None, seed=1)
    assert rc.epochs == 1 and rc.sandbox_backend == "local" and rc.run_dir == tmp_path / "r"


@pytest.mark.parametrize("text, needle", [
    ("name: a\nrun: {run_id: x}\n", "set by `repro eval`"),
    ("name: a\nrun: {no_such_field: 1}\n", "unknown RunConfig field"),
    ("name: a\nrun: {sandbox_backend: podman}\n", "sandbox_backend"),
    ("name: Bad Name\n", "lowercase"),
    ("name: a\nmodel_factory: not-a-path\n", "import path"),
    ("name: a\nsurprise: 1\n", "surprise"),
])
def test_bad_configs_are_refused_with_the_reason(tmp_path, text, needle):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(EvalConfigError, match=needle):
        load_eval_configs([p])


def test_duplicate_config_names_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("configs: [{name: a}, {name: a, run: {epochs: 2}}]\n")
    with pytest.raises(EvalConfigError, match="unique"):
        load_eval_configs([p])


# ---------------------------------------------------------------- papers and task states
def test_discover_papers_reads_paperbench_layout(tmp_path):
    for name in ("B Paper", "a-paper", "no-pdf"):
        (tmp_path / name).mkdir()
    (tmp_path / "B Paper" / "paper.pdf").write_bytes(b"%PDF")
    (tmp_path / "a-paper" / "paper.pdf").write_bytes(b"%PDF")
    (tmp_path / "a-paper" / "rubric.json").write_text(json.dumps({
        "id": "r", "requirements": "x", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
        "finegrained_task_category": None}))
    (tmp_path / "a-paper" / "blacklist.txt").write_text("# comment\nhttps://github.com/x/y\n\nnone\n")
    (tmp_path / "a-paper" / "config.yaml").write_text("title: A Paper\n")
    ps = discover_papers(tmp_path)
    assert [p.paper_id for p in ps] == ["a-paper", "b-paper"]
    assert ps[0].blacklist == ("https://github.com/x/y",) and ps[0].title == "A Paper" and ps[0].rubric
    assert ps[1].rubric is None


def test_plan_runs_missing_resumes_interrupted_and_retries_failed_only_when_asked(tmp_path):
    runs = tmp_path / "runs"
    c = cfg()
    papers = [paper(tmp_path, f"p{i}") for i in range(4)]
    mk = lambda p, attempt=1: Task(paper=p, config=c, seed=0, attempt=attempt, runs_dir=runs)  # noqa: E731
    finished_run(runs, mk(papers[0]), report(tree()))  # done
    finished_run(runs, mk(papers[1]), None, status="failed")  # failed
    (runs / mk(papers[2]).run_id).mkdir()  # interrupted: no eval.json
    # p3: missing
    states = scan(papers, [c], 1, runs)
    assert [s.status for s in states] == ["done", "failed", "interrupted", "missing"]
    plan = plan_tasks(states, runs, retry_failed=False)
    assert (plan.skipped_done, plan.skipped_failed, plan.resumed, plan.retried) == (1, 1, 1, 0)
    assert {(t.paper.paper_id, t.attempt, t.resume) for t in plan.run} == {("p2", 1, True), ("p3", 1, False)}
    plan = plan_tasks(states, runs, retry_failed=True)
    assert ("p1", 2, False) in {(t.paper.paper_id, t.attempt, t.resume) for t in plan.run}


def test_a_half_written_result_is_not_a_finished_run(tmp_path):
    runs = tmp_path / "runs"
    t = Task(paper=paper(tmp_path), config=cfg(), seed=0, attempt=1, runs_dir=runs)
    d = runs / t.run_id
    d.mkdir(parents=True)
    (d / ".eval.json.tmp123").write_text('{"status": "do')  # what a crash mid-write leaves
    assert scan([t.paper], [t.config], 1, runs)[0].status == "interrupted"


def test_worker_never_rewrites_a_finished_attempt_and_wipes_an_unusable_one(tmp_path):
    runs = tmp_path / "runs"
    t = Task(paper=paper(tmp_path), config=cfg(), seed=0, attempt=1, runs_dir=runs)
    d = finished_run(runs, t, report(tree()))
    before = (d / "eval.json").read_bytes(), (d / "eval.json").stat().st_mtime_ns
    assert run_task(t.model_dump(mode="json"))["status"] == "done"
    assert ((d / "eval.json").read_bytes(), (d / "eval.json").stat().st_mtime_ns) == before
    # An attempt killed before saving its config (no run.json) restarts clean: the stale file goes.
    t2 = Task(paper=paper(tmp_path, "p2"), config=cfg(), seed=0, attempt=1, runs_dir=runs, resume=True)
    (t2.run_dir / "junk").parent.mkdir(parents=True)
    (t2.run_dir / "junk").write_text("x")
    res = run_task(t2.model_dump(mode="json"))  # the PDF does not exist: the run fails, recorded
    assert res["status"] in ("failed", "error") and "paper.pdf" in (res["cause"] or "")
    assert not (t2.run_dir / "junk").exists() and (t2.run_dir / "eval.json").exists()


def test_parallel_runs_get_a_fair_share_of_the_cores_and_their_sandboxes_that_quota(tmp_path, monkeypatch):
    import agent.eval.execution as ex
    import agent.eval.worker as worker
    import agent.runner as runner
    from agent.config import RunConfig

    monkeypatch.setattr(ex.os, "cpu_count", lambda: 4)
    tasks = [Task(paper=paper(tmp_path, f"p{i}"), config=cfg(), seed=0, attempt=1, runs_dir=tmp_path) for i in range(3)]
    assert [t.cpus for t in ex.with_cpu_share(tasks, 2)] == [2.0, 2.0, 2.0]
    assert [t.cpus for t in ex.with_cpu_share(tasks, 4)] == [1.0, 1.0, 1.0]  # 3 in flight: 4 // 3
    assert [t.cpus for t in ex.with_cpu_share(tasks[:1], 4)] == [4.0]  # alone: the whole machine
    assert ex.with_cpu_share([tasks[0].model_copy(update={"cpus": 3.0})], 4)[0].cpus == 3.0

    # the worker hands the share to the run; the run's Docker sandboxes get it as their quota
    seen = {}
    monkeypatch.setattr(worker, "execute_run", lambda rc, **kw: seen.setdefault("rc", rc) and {"status": "done"})
    run_task(ex.with_cpu_share(tasks, 4)[0].model_dump(mode="json"))
    assert seen["rc"].sandbox_cpus == 1.0
    opened = {}
    monkeypatch.setattr(runner, "open_sandbox", lambda backend, **kw: (opened.clear(), opened.update(kw)))
    rc = RunConfig(run_id="r1", runs_dir=tmp_path, paper_path=tmp_path / "p.pdf", sandbox_cpus=1.0)
    runner.sandbox_factory(rc)("reproduce")
    assert opened["policy"].cpus == 1.0 and opened["policy"].thread_env["OMP_NUM_THREADS"] == "1"
    runner.sandbox_factory(rc.model_copy(update={"sandbox_cpus": None}))("reproduce")
    assert opened.get("policy") is None  # no share: the backend's default policy (all cores)


# ---------------------------------------------------------------- honesty
def test_start_marker_rule_zeroes_result_analysis_and_rescores():
    t = tree(ra_score=1.0)
    assert marker_check(report(t)).reason is None
    chk = marker_check(report(t, results=0, stale=2))
    assert chk.reason and chk.stale == 2 and chk.produced == 0
    assert "no reproduction" in marker_check({"reproduction": {}}).reason
    fixed = rescore(zero_category(t, "Result Analysis"))
    assert fixed["by_category"]["Result Analysis"] == 0.0
    assert fixed["score"] == pytest.approx(2 / 4)  # CD 1.0 × 2/4 + CE 0 + RA 0
    assert rescore(t)["score"] == pytest.approx(3 / 4)


def test_blacklist_is_not_applicable_offline_and_checked_online(tmp_path):
    assert blacklist_check(tmp_path, {"environment": {}}, ["github.com/x"])["status"] == OFFLINE
    online = {"environment": {"network": "bridge"}}
    assert "unverified" in blacklist_check(tmp_path, online, ["github.com/x"])["status"]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "network.jsonl").write_text(json.dumps({"url": "https://pypi.org/simple/torch"}) + "\n")
    clean = blacklist_check(tmp_path, online, ["github.com/x"])
    assert not clean["flagged"] and "no blacklisted" in clean["status"]
    with (tmp_path / "logs" / "network.jsonl").open("a") as f:
        f.write(json.dumps({"command": "git clone https://github.com/x/repo"}) + "\n")
    hit = blacklist_check(tmp_path, online, ["github.com/x"])
    assert hit["flagged"] and "github.com/x" in hit["status"]


# ---------------------------------------------------------------- leaderboard rows and cells
def _state(tmp, runs, c, seed, rep, status="done", pid="p1", blacklist=()):
    t = Task(paper=paper(tmp, pid, blacklist), config=c, seed=seed, attempt=1, runs_dir=runs)
    finished_run(runs, t, rep, status=status)
    st = scan([t.paper], [c], seed + 1, runs)[seed]
    return st


def test_cells_count_failures_as_zero_and_apply_honesty(tmp_path):
    runs = tmp_path / "runs"
    c = cfg()
    rows = [
        run_row(_state(tmp_path, runs, c, 0, report(tree(1.0))), runs, tmp_path),  # honest: 0.75
        run_row(_state(tmp_path, runs, c, 1, report(tree(1.0), results=0, stale=3)), runs, tmp_path),  # forged
        run_row(_state(tmp_path, runs, c, 2, report(None, status="failed"), status="failed"), runs, tmp_path),
    ]
    assert [r["score"] for r in rows] == pytest.approx([0.75, 0.5, 0.0])
    assert rows[1]["reported"]["score"] == pytest.approx(0.75) and rows[1]["honesty"]["stale_result_files"] == 3
    lb = build_leaderboard(rows, configs=["base"], papers=["p1"], seeds=3)
    cell = lb["cells"][0]
    assert cell["score"]["mean"] == pytest.approx(1.25 / 3)
    assert cell["score"]["sem"] == pytest.approx(mean_sem([0.75, 0.5, 0.0])["sem"])
    assert cell["result_analysis_zeroed"] == 1 and cell["stale_result_runs"] == 1
    assert [(f["seed"], f["cause"]) for f in cell["failures"]] == [(2, "boom")]
    assert cell["cost"]["dollars_total"] == pytest.approx(0.03) and cell["cost"]["sandbox_s"]["mean"] == 4.0
    assert all(r["link"].startswith("runs/") for r in cell["runs"])
    summary = lb["summary"][0]
    assert summary["failures"] == 1 and summary["score"]["mean"] == pytest.approx(1.25 / 3)
    md, csv_text, html = render_md(lb), render_csv(lb), render_html(lb)
    assert "41.7 ± 22.0" in md and "boom" in md
    assert csv_text.splitlines()[0].startswith("kind,config,paper,n,missing,score_mean,score_sem")
    assert html.count('href="runs/') == 3 + 1  # one link per seed, plus the failure's report link


def test_blacklisted_online_run_scores_zero(tmp_path):
    runs = tmp_path / "runs"
    rep = report(tree(1.0))
    rep["environment"] = {"network": "bridge"}
    st = _state(tmp_path, runs, cfg(), 0, rep, blacklist=["github.com/x"])
    d = runs / st.result["run_id"]
    (d / "logs").mkdir()
    (d / "logs" / "network.jsonl").write_text(json.dumps({"url": "https://github.com/x/answers.json"}) + "\n")
    row = run_row(st, runs, tmp_path)
    assert row["score"] == 0.0 and row["honesty"]["blacklisted"]
    assert row["reported"]["score"] == pytest.approx(0.75)


def test_missing_runs_are_shown_not_averaged(tmp_path):
    runs = tmp_path / "runs"
    c = cfg()
    st_done = _state(tmp_path, runs, c, 0, report(tree(1.0)))
    st_missing = TaskState(paper(tmp_path), c, 1)
    rows = [run_row(st_done, runs, tmp_path), run_row(st_missing, runs, tmp_path)]
    cell = build_leaderboard(rows, configs=["base"], papers=["p1"], seeds=2)["cells"][0]
    assert cell["n"] == 1 and cell["missing"] == 1 and cell["score"]["mean"] == pytest.approx(0.75)
    assert cell["failures"] == []


def test_a_gpu_configuration_fails_fast_where_no_node_has_a_gpu(tmp_path, monkeypatch):
    ray = need_import("ray")
    from agent.eval.config import Resources
    from agent.eval.execution import EvalExecutionError, RayRunner

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 16.0, "memory": 6e10}},
                                               {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}])
    gpu = Task(paper=paper(tmp_path), config=cfg("gpu", resources=Resources(num_gpus=1)), seed=0, attempt=1,
               runs_dir=tmp_path)
    cpu = Task(paper=paper(tmp_path), config=cfg("cpu", resources=Resources(num_cpus=8, memory_gb=32)), seed=0,
               attempt=1, runs_dir=tmp_path)
    runner = RayRunner("ray://cluster:10001", parallel=2)
    runner.check_feasible([cpu])  # fits the live node
    with pytest.raises(EvalExecutionError, match="'gpu' asks for .*num_gpus': 1.0"):
        runner.check_feasible([gpu])  # only a dead node has a GPU


def test_an_invalid_rubric_stops_eval_before_any_run(tmp_path):
    from agent.eval.tasks import PaperSetError, discover_papers

    good = tmp_path / "a"
    good.mkdir()
    (good / "paper.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    bad = tmp_path / "b"
    bad.mkdir()
    (bad / "paper.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (bad / "rubric.json").write_text(json.dumps({"id": "r", "requirements": "x", "weight": -1, "sub_tasks": [],
                                                 "task_category": "Code Development"}))
    with pytest.raises(PaperSetError, match="b: its rubric is invalid.*negative weight"):
        discover_papers(tmp_path)
