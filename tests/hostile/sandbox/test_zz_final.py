"""Run last (file order): S07 policy drift over every container the suite made; R15 leaks; K03 logs."""
from __future__ import annotations

import json

import pytest

from .conftest import CANARY_ID, RESULTS


@pytest.mark.docker
def test_s07_policy_drift_every_container(rec, image):
    with rec.row("S07", "docker", "match") as row:
        assert rec.created, "the suite created no container?"
        roles = {a["Config"]["Labels"]["repro.role"] for a in rec.created}
        problems = []
        for attrs, (policy, runtime) in zip(rec.created, rec.policies):
            problems += [f"{attrs['Name']}: {p}" for p in policy.check_container(attrs, runtime)]
        row["outcome"] = "match" if not problems and roles >= {"agent", "reproduce", "setup"} else "drift"
        row["escaped"] = bool(problems)
        assert not problems, problems
        assert roles >= {"agent", "reproduce", "setup"}, roles


@pytest.mark.docker
def test_k02_every_container_inspect_clean(rec, image):
    with rec.row("K02-all", "docker", "clean") as row:
        leaked = CANARY_ID in json.dumps(rec.created)
        row["leaked"] = leaked
        row["outcome"] = "leaked" if leaked else "clean"
        assert not leaked


@pytest.mark.docker  # it scans what the suite's Docker sandboxes logged and copied out
def test_k03_logs_and_artifacts_clean(rec):
    """Every exec log, every artifact copied out of a sandbox and the result rows: no canary,
    no Authorization header."""
    with rec.row("K03", "logs", "clean") as row:
        files = [p for d in (rec.log_dir, rec.run_dir) if d and d.exists() for p in d.rglob("*") if p.is_file()]
        texts = [p.read_bytes() for p in files] + [RESULTS.read_bytes() if RESULTS.exists() else b""]
        leaked = [str(p) for p, t in zip(files, texts) if CANARY_ID.encode() in t or b"authorization:" in t.lower()]
        leaked += ["results"] if CANARY_ID.encode() in texts[-1] else []
        row["leaked"] = bool(leaked)
        row["outcome"] = "leaked" if leaked else "clean"
        assert not leaked, leaked
        assert files, "nothing to scan: the suite wrote no log and copied nothing out"


@pytest.mark.docker
def test_r15_no_leftovers(rec, run_id, image):
    import time

    from sandbox import docker as dk

    with rec.row("R15", "docker", "clean") as row:
        # module-scoped sandboxes of earlier files are closed by now; give docker a moment
        for _ in range(20):
            cs, vs = dk.list_ours(run_id)
            if not cs and not vs:
                break
            time.sleep(0.25)
        row["outcome"] = "clean" if not cs and not vs else f"{len(cs)} containers, {len(vs)} volumes left"
        row["lost"] = False
        assert not cs and not vs, row["outcome"]
