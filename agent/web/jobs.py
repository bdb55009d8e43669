"""Runs submitted from the browser: a queue kept on disk, each run started as its own process.

A submitted run is a run directory like any other (run.json, then checkpoints, report...) plus
``web.json``, its place in the queue: state queued → running → ended (or cancelling → ended). The
state lives on disk so the queue survives a restart of `repro serve`: a run that was running when
the server stopped (its process interrupted, or gone with the machine) is queued again and resumes
from its checkpoint; one whose process still lives (the server was killed, not its runs) is
watched again by its pid.

Runs are child processes (agent/web/worker.py), not threads or Ray tasks, because a run must be
stoppable on its own — Cancel signals one process group and its cleanup runs there — and must
outlive nothing it should not: the server's exit interrupts them, and their checkpoints resume.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from agent.web.worker import EXIT_INTERRUPTED, PASSWORD_ENV, cancel_path
from graders.files import write_json

log = logging.getLogger("repro.web")
STATE_FILE = "web.json"
GRACE_S = 30.0  # a cancelled run's own cleanup (reap sandboxes, write the report) before it is killed


def state_path(run_dir: Path) -> Path:
    return Path(run_dir) / STATE_FILE


def read_state(run_dir: Path) -> dict | None:
    try:
        return json.loads(state_path(run_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _update(run_dir: Path, **changes) -> dict:
    st = {**(read_state(run_dir) or {}), **changes}
    write_json(state_path(run_dir), st)
    return st


class Scheduler:
    """Starts queued runs (``parallel`` at a time), watches them, cancels them, recovers after a restart."""

    def __init__(self, runs_dir: Path, *, parallel: int = 1, poll_s: float = 0.5):
        self.runs_dir = Path(runs_dir)
        self.parallel = max(1, int(parallel))
        self.poll_s = poll_s
        self.children: dict[str, subprocess.Popen] = {}
        self.passwords: dict[str, str] = {}  # in memory only: a PDF password never touches the disk
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ queue
    def managed(self) -> list[Path]:
        return sorted((p.parent for p in self.runs_dir.glob(f"*/{STATE_FILE}")),
                      key=lambda d: (read_state(d) or {}).get("submitted_at", 0))

    def submit(self, run_dir: Path, *, title: str | None, password: str | None = None) -> None:
        with self.lock:
            if password:
                self.passwords[run_dir.name] = password
            _update(run_dir, state="queued", submitted_at=time.time(), title=title, resume=False)
        self.wake()

    def requeue(self, run_dir: Path, why: str) -> bool:
        """Queue a run the server manages again (a review answered in the browser): it resumes."""
        with self.lock:
            st = read_state(run_dir)
            if st is None or st.get("state") in ("queued", "running", "cancelling"):
                return False
            _update(run_dir, state="queued", resume=True, note=why, queued_again_at=time.time())
        self.wake()
        return True

    def cancel(self, run_dir: Path, who: str) -> str:
        """Cancel a queued or running run; returns what happened, in words."""
        with self.lock:
            st = read_state(run_dir) or {}
            state = st.get("state")
            if state == "queued":
                write_json(cancel_path(run_dir), {"who": who, "at": time.time()})
                _update(run_dir, state="cancelling", cancel_at=time.time())
                self._finish_cancel(run_dir, who)
                return "cancelled before it started"
            if state != "running":
                raise ValueError(f"the run is {state or 'not managed by this server'}; only a queued or running "
                                 "run can be cancelled")
            write_json(cancel_path(run_dir), {"who": who, "at": time.time()})
            _update(run_dir, state="cancelling", cancel_at=time.time())
            self._signal(run_dir.name, st, signal.SIGTERM)
            return "cancelling: its sandboxes are being removed and its partial report written"

    def _finish_cancel(self, run_dir: Path, who: str) -> None:
        """After the run's process is gone (or never started): make sure nothing is left and a report exists."""
        from agent.runner import cancel_run, load_run_config

        try:
            report = run_dir / "report.json"
            if not report.exists() or (json.loads(report.read_text()).get("status") != "cancelled"):
                cancel_run(load_run_config(run_dir.name, run_dir.parent), f"cancelled from the browser by {who}")
            elif (load_run_config(run_dir.name, run_dir.parent)).sandbox_backend == "docker":
                from sandbox.docker import reap

                reap(run_dir.name)  # the run did its own cleanup; a container a killed child left goes too
        except Exception:  # noqa: BLE001 - the state must still end; the log says why
            log.exception("cleaning up cancelled run %s", run_dir.name)
        _update(run_dir, state="ended", ended_at=time.time(), outcome="cancelled")

    # ------------------------------------------------------------ processes
    def _alive(self, run_id: str, st: dict) -> bool:
        child = self.children.get(run_id)
        if child is not None:
            return child.poll() is None
        pid = st.get("pid")
        if not pid:
            return False
        try:
            p = psutil.Process(pid)
            # the pid is ours only if the process is the one started then (pids are reused)
            return abs(p.create_time() - float(st.get("pid_created") or 0)) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
        except (psutil.Error, ValueError):
            return False

    def _signal(self, run_id: str, st: dict, sig: int) -> None:
        pid = (self.children[run_id].pid if run_id in self.children else st.get("pid"))
        if pid and self._alive(run_id, st):
            try:
                os.killpg(pid, sig)  # the worker leads its own process group (its embedded server too)
            except ProcessLookupError:
                pass

    def _start(self, run_dir: Path) -> None:
        env = dict(os.environ)
        env.pop(PASSWORD_ENV, None)
        if run_dir.name in self.passwords:
            env[PASSWORD_ENV] = self.passwords.pop(run_dir.name)
        (run_dir / "logs").mkdir(exist_ok=True)
        out = open(run_dir / "logs" / "worker.out", "ab")
        child = subprocess.Popen([sys.executable, "-m", "agent.web.worker", str(run_dir)], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        out.close()
        self.children[run_dir.name] = child
        try:
            created = psutil.Process(child.pid).create_time()
        except psutil.Error:
            created = None
        _update(run_dir, state="running", started_at=time.time(), pid=child.pid, pid_created=created)

    def _ended(self, run_dir: Path, st: dict) -> None:
        child = self.children.pop(run_dir.name, None)
        code = child.returncode if child is not None else None
        if st.get("state") == "cancelling":  # here, not in a thread: the next tick must find it ended
            self._finish_cancel(run_dir, self._canceller(run_dir))
            return
        if code == EXIT_INTERRUPTED:
            _update(run_dir, state="queued", resume=True, note="interrupted; resumes from its checkpoint")
            return
        outcome = (json.loads((run_dir / "report.json").read_text()).get("status")
                   if (run_dir / "report.json").exists() else None)
        if code not in (0, None) and not (run_dir / "failure.json").exists():
            tail = (run_dir / "logs" / "worker.out").read_text(errors="replace")[-2000:] \
                if (run_dir / "logs" / "worker.out").exists() else ""
            write_json(run_dir / "failure.json", {"error": f"the run's process exited with code {code}",
                                                  "at": time.time(), "output_tail": tail,
                                                  "resume": f"repro run --resume {run_dir.name}"})
        _update(run_dir, state="ended", ended_at=time.time(), exit_code=code, outcome=outcome)

    @staticmethod
    def _canceller(run_dir: Path) -> str:
        try:
            return json.loads(cancel_path(run_dir).read_text()).get("who") or "someone"
        except (OSError, json.JSONDecodeError):
            return "someone"

    def tick(self) -> None:
        with self.lock:
            running = 0
            for d in self.managed():
                st = read_state(d) or {}
                if st.get("state") in ("running", "cancelling") and st.get("pid"):
                    if self._alive(d.name, st):
                        running += 1
                        if st["state"] == "cancelling" and time.time() - st.get("cancel_at", 0) > GRACE_S:
                            self._signal(d.name, st, signal.SIGKILL)  # its cleanup hung: the server finishes it
                    else:
                        self._ended(d, st)
            for d in self.managed():
                if running >= self.parallel:
                    break
                if (read_state(d) or {}).get("state") == "queued":
                    self._start(d)
                    running += 1

    def recover(self) -> None:
        """At start-up: runs left "running" by a server that stopped are resumed (or watched, if alive)."""
        with self.lock:
            for d in self.managed():
                st = read_state(d) or {}
                if st.get("state") == "running" and not self._alive(d.name, st):
                    _update(d, state="queued", resume=True,
                            note="interrupted by a restart of repro serve; resumes from its checkpoint")
                elif st.get("state") == "cancelling" and not self._alive(d.name, st):
                    self._finish_cancel(d, self._canceller(d))

    # ------------------------------------------------------------ the thread
    def wake(self) -> None:
        self._kick.set()

    def start(self) -> "Scheduler":
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="repro-scheduler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad run directory must not stop the queue
                log.exception("scheduler tick")
            self._kick.wait(self.poll_s)
            self._kick.clear()

    def stop(self, timeout_s: float = 20.0) -> None:
        """The server is stopping: interrupt the runs (their checkpoints stay; the next server resumes them)."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(5)
        with self.lock:
            for run_id, child in list(self.children.items()):
                if child.poll() is None:
                    try:
                        os.killpg(child.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + timeout_s
            for run_id, child in list(self.children.items()):
                try:
                    child.wait(max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait(5)
            # their web.json still says "running": recover() at the next start queues them to resume
