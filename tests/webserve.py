"""`repro serve` as the user starts it (a child process on 127.0.0.1), for the web tests.

The scripted session is the coding-agent script the graph tests use (tests/unit/agent/conftest.py),
with a smoke job that takes a few seconds, so a test can find a run mid-way (its workspace
container up) to cancel it or to restart the server under it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "papers" / "demo-minilm-sentiment" / "paper.pdf"


def scripted_session(path: Path, smoke_sleep_s: int = 8) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "agent"))
    try:
        from conftest import script
    finally:
        sys.path.pop(0)
    spec = script(path.with_suffix(".calls.jsonl"))
    for rule in spec["rules"]:
        for c in rule.get("calls", []):
            if c["tool"] == "start_job":
                c["args"]["command"] = f"sleep {smoke_sleep_s}; REPRO_SMOKE=1 bash reproduce.sh"
    path.write_text(json.dumps(spec))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One `repro serve` process; ``stop()`` is a Ctrl-C-like SIGTERM (runs are interrupted, not cancelled)."""

    def __init__(self, runs: Path, script: Path, port: int | None = None, **env_extra: str):
        self.runs, self.port = runs, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REPRO_MODEL", "REPRO_TEST_MARK_AT", "REPRO_TEST_HANG_AT")}
        env.update(REPRO_SCRIPTED_MODEL=str(script), **env_extra)
        self.log = open(runs.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--runs-dir", str(runs),
                                      "--port", str(self.port)], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"repro serve did not start: {self.output()[-3000:]}")
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def output(self) -> str:
        self.log.flush()
        return (self.runs.parent / f"serve-{self.port}.log").read_text(errors="replace")

    def token(self) -> str:
        m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', self.client.get("/new").text)
        assert m, "no session token on the form"
        return m.group(1)

    def submit(self, pdf: Path = DEMO, **fields) -> httpx.Response:
        data = {"csrf_token": self.token(), "endpoint": "scripted", "max_steps": "20", **fields}
        return self.client.post("/new", data=data, files={"paper": ("paper.pdf", pdf.read_bytes(), "application/pdf")})

    def live(self, run_id: str) -> dict:
        return self.client.get(f"/api/runs/{run_id}/live").json()

    def wait(self, run_id: str, until, timeout_s: float = 300) -> dict:
        deadline, p = time.time() + timeout_s, {}
        while time.time() < deadline:
            p = self.live(run_id)
            if until(p):
                return p
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} never got there: {json.dumps(p)[:2000]}\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)
        self.log.close()


def run_id_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text[-2000:]
    return response.headers["location"].split("/runs/")[1].split("?")[0]
