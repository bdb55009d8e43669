"""K: canary secrets planted on the host never reach a sandbox, docker inspect or a log."""
from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest

from sandbox.base import PolicyViolation

from .conftest import CANARY_ID


def _leaks(text: str) -> bool:
    return CANARY_ID in text


@pytest.mark.docker
def test_k01_inside_docker(shared, rec):
    with rec.row("K01", "docker", "clean") as row:
        r = shared.exec("env; cat /proc/1/environ 2>/dev/null; cat /proc/[0-9]*/environ 2>/dev/null;"
                        f"grep -rlF {CANARY_ID} / --exclude-dir=proc --exclude-dir=sys 2>/dev/null; true", timeout=300)
        leaked = _leaks(r.stdout + r.stderr) or "canary" in r.stdout.lower()
        row["leaked"] = leaked
        row["outcome"] = "leaked" if leaked else "clean"
        assert not leaked and "HOME=/tmp" in r.stdout


def test_k01_inside_local(rec, tmp_path):
    from sandbox.local import LocalSandbox

    with rec.row("K01", "local", "clean") as row:
        with LocalSandbox(run_id="hostile-k01", base_dir=tmp_path) as sb:
            r = sb.exec("env; cat /proc/self/environ; cat \"$HOME/.netrc\" 2>/dev/null; true", timeout=30)
        leaked = _leaks(r.stdout + r.stderr)
        row["leaked"] = leaked
        row["outcome"] = "leaked" if leaked else "clean"
        assert not leaked


@pytest.mark.docker
def test_k02_docker_inspect(shared, rec):
    from sandbox import docker as dk

    with rec.row("K02", "docker", "clean") as row:
        attrs = dk.client().api.inspect_container(shared.container.id)
        text = json.dumps(attrs) + json.dumps(dk.client().api.inspect_image(shared.image)["Config"])
        leaked = _leaks(text)
        row["leaked"] = leaked
        row["outcome"] = "leaked" if leaked else "clean"
        assert not leaked


def test_k_env_refusal(rec):
    from sandbox.local import LocalSandbox

    with rec.row("K-env", "local", "refused") as row:
        with LocalSandbox(run_id="hostile-kenv") as sb:
            refused = 0
            for env in ({"OPENAI_API_KEY": os.environ["OPENAI_API_KEY"]}, {"X": os.environ["HF_TOKEN"]},
                        {"HF_TOKEN": "x"}, {"Y": os.environ["OPENAI_API_KEY"]}):
                try:
                    sb.exec("env", timeout=10, env=env)
                except PolicyViolation:
                    refused += 1
        row["outcome"] = "refused" if refused == 4 else f"accepted {4 - refused}"
        row["leaked"] = refused != 4
        assert refused == 4


def test_k06_local_untrusted_needs_bwrap(rec, monkeypatch):
    from sandbox import local

    with rec.row("K06", "local", "refused") as row:
        monkeypatch.setattr(local.shutil, "which", lambda name: None)
        try:
            local.LocalSandbox(run_id="hostile-k06", trust="untrusted").close()
            row["outcome"] = "started"
        except PolicyViolation as e:
            row["outcome"] = "refused"
            assert "bwrap" in str(e) or "bubblewrap" in str(e)
        assert row["outcome"] == "refused"
        # regression: the local backend never reads os.environ (AST check, docstrings ignored)
        tree = ast.parse(Path(local.__file__).read_text())
        uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("environ", "environb")
                and isinstance(n.value, ast.Name) and n.value.id == "os"]
        assert not uses, f"local.py touches os.environ at lines {uses}"
    if shutil.which("bwrap") is None:
        with pytest.raises(PolicyViolation):
            local.LocalSandbox(run_id="hostile-k06b", trust="untrusted")
