"""`repro eval` end to end on a local Ray instance, with scripted models on the local sandbox backend
(the scripted agent writes and runs a tiny real model through the tool loop).

3 papers (the demo paper and two variants rendered by papers/demo.py) × 2 seeds × 2
configurations. The driver is SIGKILLed mid-way; the next `repro eval` must run only the
missing runs, leave finished ones byte-for-byte alone, and the leaderboard must agree with
the per-run reports (recomputed here independently).
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agent.eval.doubles import make_demo_papers
from graders.aggregate import aggregate
from graders.rubric import GradedTaskNode

PAPERS = ["demo-minilm-sentiment", "demo-variant-1", "demo-variant-2"]
CONFIGS = ["skilled", "sloppy"]
SEEDS = 2
TOTAL = len(PAPERS) * len(CONFIGS) * SEEDS
FORGED = "demo-variant-2"  # the sloppy configuration's reproduction leaves only pre-marker results
FAILING = ("demo-minilm-sentiment", 1)  # the sloppy configuration's model is down for this run
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}

CONFIG_YAML = """\
name: {name}
model_factory: agent.eval.doubles:scripted_models
factory_args: {args}
run: {{sandbox_backend: local, train_limit: 100, epochs: 1}}
resources: {{num_cpus: 1}}
"""


@pytest.fixture(scope="module")
def eval_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    papers = root / "paperset"  # not "papers": `python -m` puts the cwd first on sys.path
    make_demo_papers(papers, variants=2)
    (papers / "demo-variant-1" / "blacklist.txt").write_text("# resources the agent must not use\n"
                                                             "github.com/example/minilm-sentiment\n")
    (papers / "demo-variant-1" / "config.yaml").write_text("id: demo-variant-1\ntitle: Demo variant one\n")
    cfgs = []
    for name, args in [("skilled", {"skill": 0.75}),
                       ("sloppy", {"skill": 0.4, "forge_papers": [FORGED], "fail": [f"{FAILING[0]}:{FAILING[1]}"]})]:
        p = root / f"{name}.yaml"
        p.write_text(CONFIG_YAML.format(name=name, args=json.dumps(args)))
        cfgs.append(p)
    return root, papers, cfgs


def _cmd(papers: Path, cfgs: list[Path], out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "agent.cli", "eval", str(papers), "--seeds", str(SEEDS), "--parallel", "2",
           "--out", str(out), "--json", "--progress-every", "0.5", *extra]
    for c in cfgs:
        cmd += ["--config", str(c)]
    return cmd


def _finished(out: Path) -> dict[str, dict]:
    return {p.parent.name: {"eval": p.read_bytes(), "mtime": p.stat().st_mtime_ns,
                            "report": (p.parent / "report.json").read_bytes()
                            if (p.parent / "report.json").exists() else None}
            for p in (out / "runs").glob("*/eval.json")}


def _ray_listeners(pids: set[int]) -> list[tuple[int, str]]:
    return [(c.pid, c.laddr.ip) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


def _kill_driver_midway(cmd: list[str], out: Path, at: int) -> tuple[list[tuple[int, str]], int]:
    """Start the driver, check Ray's sockets while it runs, SIGKILL it after ``at`` finished runs."""
    log = (out.parent / "driver1.log").open("w")
    driver = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=out.parent)
    listeners: list[tuple[int, str]] = []
    tree: set[int] = set()
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            assert driver.poll() is None, f"driver exited early: {(out.parent / 'driver1.log').read_text()[-3000:]}"
            n = len(list((out / "runs").glob("*/eval.json"))) if (out / "runs").exists() else 0
            try:
                kids = {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
            except psutil.Error:
                kids = set()
            tree |= kids
            if n >= 1 and not listeners:
                listeners = _ray_listeners(kids | {driver.pid})
            if n >= at:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the driver did not finish enough runs in time")
        tree |= {p.pid for p in psutil.Process(driver.pid).children(recursive=True)}
        os.kill(driver.pid, signal.SIGKILL)  # the crash under test
        driver.wait(timeout=30)
    finally:
        # Ray's own children die with the driver (fate sharing), except a few agents: end ours, by pid.
        for pid in tree:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        psutil.wait_procs([p for p in (psutil.Process(x) for x in tree if psutil.pid_exists(x))], timeout=20)
        log.close()
    return listeners, n


def _run(cmd: list[str], cwd: Path) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_row(run_dir: Path) -> dict:
    """Independently recompute what the leaderboard must show for one run, from its report."""
    rep = json.loads((run_dir / "report.json").read_text())
    grade = rep.get("grade")
    if not grade:
        return {"score": 0.0, "coverage": 0.0, "cats": {c: 0.0 for c in ("Code Development", "Code Execution",
                                                                           "Result Analysis")}, "zeroed": False}
    produced = (rep.get("reproduction") or {}).get("results")
    if produced:
        return {"score": grade["score"], "coverage": grade["coverage"], "cats": grade["by_category"], "zeroed": False}

    def zero(n):
        if not n["sub_tasks"] and n.get("task_category") == "Result Analysis":
            return {**n, "score": 0.0, "valid_score": True}
        return {**n, "sub_tasks": [zero(c) for c in n["sub_tasks"]]}

    agg = aggregate(GradedTaskNode.model_validate(zero(rep["graded_tree"])))
    return {"score": agg.score, "coverage": agg.coverage, "cats": agg.by_category, "zeroed": True}


def _ms(values):
    return statistics.mean(values), (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None)


def test_eval_kill_resume_and_leaderboard(eval_setup):
    root, papers, cfgs = eval_setup
    out = root / "out"
    cmd = _cmd(papers, cfgs, out)

    # 1. Kill the driver mid-way (a real SIGKILL of the child process running `repro eval`).
    listeners, _ = _kill_driver_midway(cmd, out, at=4)
    assert listeners, "no listening socket of the local Ray instance was seen"
    # while runs were in flight the driver said where each one was (its step, for how long)
    progress = [ln for ln in (root / "driver1.log").read_text().splitlines() if ln.strip().startswith("…")]
    assert progress and all(re.search(r"\((\d+ min )?\d+ s in this step, (\d+ min )?\d+ s in all\)|starting", ln) for ln in progress)
    assert any(re.search(r": (ingest|plan|code|reproduce|grade|report)\b", ln) for ln in progress), progress[:5]
    assert {ip for _, ip in listeners} <= LOOPBACK, f"Ray listens beyond loopback: {listeners}"
    before = _finished(out)
    assert 4 <= len(before) < TOTAL
    interrupted = [d.name for d in (out / "runs").iterdir() if d.is_dir() and not (d / "eval.json").exists()]
    assert interrupted, "the kill landed between runs: nothing was in flight"
    resumable = [n for n in interrupted
                 if (out / "runs" / n / "run.json").exists() and (out / "runs" / n / "checkpoints.sqlite").exists()]

    # 2. Rerun: only the missing runs execute (interrupted ones resume from their checkpoints).
    summary = _run(cmd, root)
    assert summary["skipped_done"] == len(before)
    assert summary["ran"] == TOTAL - len(before)
    assert summary["resumed"] == len(interrupted)
    assert not set(summary["ran_run_ids"]) & set(before)
    after = _finished(out)
    assert len(after) == TOTAL
    for run_id, files in before.items():  # finished runs untouched, byte for byte
        assert after[run_id] == files, f"{run_id} was modified by the rerun"
    assert all(name.endswith("--a1") for name in after), "a finished task got a second attempt"
    for name in resumable:  # continued from its checkpoint, in the same directory
        assert json.loads(after[name]["eval"])["resumed"] is True
    statuses = {n: json.loads(f["eval"])["status"] for n, f in after.items()}
    failing = [n for n in statuses if n.startswith(f"{FAILING[0]}--sloppy-") and f"--s{FAILING[1]}--" in n]
    assert [statuses[n] for n in failing] == ["failed"]
    assert sum(s == "done" for s in statuses.values()) == TOTAL - 1

    # 3. The leaderboard equals the per-run reports.
    lb = json.loads((out / "leaderboard.json").read_text())
    assert lb["papers"] == PAPERS and lb["configs"] == CONFIGS and len(lb["cells"]) == 6
    per_run = {}
    for d in (out / "runs").iterdir():
        ev = json.loads((d / "eval.json").read_text())
        per_run[(ev["paper"], ev["config"], ev["seed"])] = (d, _expected_row(d))
    for cell in lb["cells"]:
        rows = [per_run[(cell["paper"], cell["config"], s)] for s in range(SEEDS)]
        exp = [r for _, r in rows]
        for key, got in [("score", cell["score"]), ("coverage", cell["coverage"])]:
            m, sem = _ms([e[key] for e in exp])
            assert got["mean"] == pytest.approx(m) and got["sem"] == pytest.approx(sem), (cell["paper"], key)
        for cat in ("Code Development", "Code Execution", "Result Analysis"):
            m, sem = _ms([e["cats"].get(cat, 0.0) for e in exp])
            assert cell["by_category"][cat]["mean"] == pytest.approx(m)
            assert cell["by_category"][cat]["sem"] == pytest.approx(sem)
        judge = [json.loads((d / "report.json").read_text())["cost"]["judge_tokens"] for d, _ in rows]
        assert cell["cost"]["judge_tokens"]["mean"] == pytest.approx(statistics.mean(judge))
        # every seed's report is linked from the cell, and the link resolves
        assert sorted(r["seed"] for r in cell["runs"]) == list(range(SEEDS))
        for r in cell["runs"]:
            assert (out / r["link"]).is_file() and r["run_id"] in r["link"]
        zeroed = sum(e["zeroed"] for e in exp)
        assert cell["result_analysis_zeroed"] == zeroed
        if (cell["paper"], cell["config"]) == (FORGED, "sloppy"):
            assert zeroed == SEEDS and cell["by_category"]["Result Analysis"]["mean"] == 0.0
            grades = [json.loads((d / "report.json").read_text())["grade"] for d, _ in rows]
            # the grader itself gives no result credit without a results file the run wrote: the
            # judge is never asked, so it cannot be fooled, and the board agrees with the reports
            assert all(g["by_category"]["Result Analysis"] == 0.0 for g in grades)
            assert cell["score"]["mean"] == pytest.approx(statistics.mean(g["score"] for g in grades))
        else:
            assert zeroed == 0
        if (cell["paper"], cell["config"]) == ("demo-minilm-sentiment", "sloppy"):
            assert [f["seed"] for f in cell["failures"]] == [FAILING[1]]
            assert "scripted outage" in cell["failures"][0]["cause"]
        else:
            assert cell["failures"] == []
        black = "offline: blacklist not applicable"
        assert cell["blacklist"] == [black] and cell["blacklisted"] == 0
    for s in lb["summary"]:  # PaperBench: per seed the mean over papers, then mean ± SEM over seeds
        per_seed = [statistics.mean(per_run[(p, s["config"], seed)][1]["score"] for p in PAPERS)
                    for seed in range(SEEDS)]
        m, sem = _ms(per_seed)
        assert s["score"]["mean"] == pytest.approx(m) and s["score"]["sem"] == pytest.approx(sem)
        assert s["n"] == len(PAPERS) * SEEDS
    by_name = {s["config"]: s for s in lb["summary"]}
    assert by_name["sloppy"]["failures"] == 1 and by_name["sloppy"]["result_analysis_zeroed"] == SEEDS
    assert by_name["skilled"]["score"]["mean"] > by_name["sloppy"]["score"]["mean"]

    # 4. The other formats say the same thing.
    html = (out / "leaderboard.html").read_text()
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert len([h for h in hrefs if h.endswith("report.html")]) >= TOTAL
    assert all((out / h).is_file() for h in hrefs)
    csv_lines = (out / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 6 + 2
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "leaderboard.md").read_text()
    skilled = by_name["skilled"]["score"]
    assert f"**{100 * skilled['mean']:.1f} ± {100 * skilled['sem']:.1f}**" in md

    # 5. Nothing left to do: a third run skips everything; --retry-failed makes a new attempt only
    #    for the failed run, and leaves its first attempt as it was.
    again = _run(cmd, root)
    assert again["ran"] == 0 and again["skipped_done"] == TOTAL - 1 and again["skipped_failed"] == 1
    retry = _run(cmd + ["--retry-failed"], root)
    assert retry["ran"] == 1 and retry["retried"] == 1
    (retried,) = retry["ran_run_ids"]
    assert retried == failing[0].replace("--a1", "--a2")
    assert _finished(out)[failing[0]] == after[failing[0]]
