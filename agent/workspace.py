"""The run's workspace: one long-lived sandbox that owns the submission, and the host's view of it.

The agent's files live in the sandbox (Docker: a container named ``repro-<run>-workspace`` that
a resumed run re-attaches to, with its files and its running jobs). The host keeps:

* ``submission/`` — a synced copy of the submission's files (graders.contract decides which);
* ``blobs/<sha256>`` — every version of every file, content-addressed;
* ``steps/<n>.json`` — the manifest after step n (path -> sha256), so the review UI can show the
  diff of any step and the report which files came from scaffolds and which the model edited.

Commands run through agent/workspace_runner.py inside the sandbox, which gives each command its
own process group and marker so a timeout kills that command alone, never the running jobs.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from graders.files import write_atomic, write_json
from graders.contract import IGNORED_DIRS, MAX_SUBMISSION_FILE
from sandbox import SandboxError
from sandbox.policy import SandboxPolicy
from sandbox.broker.hub import DATASETS_LINK

RUNNER = (Path(__file__).with_name("workspace_runner.py")).read_text()
SENTINEL = "@@REPRO@@"
HEAD_CHARS = TAIL_CHARS = 5000
#: the sandbox's own exec timeout is a backstop past the runner's: it would kill every process
#: of the sandbox user, jobs included
BACKSTOP_S = 60
WORKSPACE_POLICY = SandboxPolicy(output_cap_bytes=64 << 10)
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")  # agent/tools/specs.py StartJob.name


class WorkspaceError(RuntimeError):
    """The workspace could not do what was asked; the message is shown to the model."""


@dataclass
class Output:
    text: str
    info: dict


def workspace_name(run_id: str) -> str:
    return f"repro-{run_id}-workspace"


class Workspace:
    def __init__(self, sandbox: Any, run_dir: Path):
        self.sb = sandbox
        self.run_dir = Path(run_dir)
        self.host = self.run_dir / "submission"
        self.blobs = self.run_dir / "blobs"
        self.steps = self.run_dir / "steps"
        self.manifest: dict[str, str] = {}
        self._fresh_manifest: dict | None = None  # from the last bash call: the files right after it
        self._manifest_path = self.run_dir / "workspace-manifest.json"
        #: per job, how far its log has streamed to the host (wait_job with on_output)
        self._job_offsets: dict[str, int] = {}
        #: per job, what the wait_job tool keeps between waits (its progress follower)
        self.job_followers: dict[str, Any] = {}
        if self._manifest_path.exists():
            self.manifest = json.loads(self._manifest_path.read_text())

    # --- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, factory, run_dir: Path, run_id: str) -> "Workspace":
        """Attach to the run's workspace sandbox (or start one and restore the host's copy into it)."""
        # no host exec logs: each call's full output is kept in the workspace (.repro/logs, jobs'
        # logs), and copied to logs/workspace/ when the loop ends (copy_logs)
        sb = factory("agent", name=workspace_name(run_id), reuse=True, policy=WORKSPACE_POLICY,
                     path=Path(run_dir) / "workspace", log_dir=None)
        ws = cls(sb, run_dir)
        if not getattr(sb, "attached", False) and ws.host.is_dir() and any(ws.host.iterdir()):
            sb.copy_in(ws.host)  # a fresh sandbox after a crash that took the old one: the files come back
        ws.link_datasets()
        return ws

    def link_datasets(self) -> None:
        """Mirror the asset broker's prepared datasets into this sandbox's writable datasets cache
        (at open, and after each dataset the broker grants)."""
        self.sb.exec(["bash", "-c", DATASETS_LINK], timeout=60)

    def close(self) -> None:
        self.sb.close()

    def copy_logs(self, max_bytes: int = 64 << 20) -> Path | None:
        """The full logs of every command and job (.repro/logs, .repro/jobs) to logs/workspace/."""
        dest = self.run_dir / "logs" / "workspace"
        tmp = dest.with_name(".workspace-logs.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self.sb.copy_out(".repro", tmp, max_bytes=max_bytes)
        except (SandboxError, FileNotFoundError, OSError):
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        shutil.rmtree(dest, ignore_errors=True)
        src = tmp / ".repro" if (tmp / ".repro").is_dir() else tmp
        src.rename(dest)
        shutil.rmtree(tmp, ignore_errors=True)
        return dest

    # --- running ------------------------------------------------------------------------------
    def _runner(self, *args: str, timeout: float, on_stderr: Callable[[bytes], None] | None = None) -> Output:
        self._fresh_manifest = None  # whatever runs now may change files
        stream = {} if on_stderr is None else {"on_output": lambda s, chunk: on_stderr(chunk) if s == 2 else None}
        res = self.sb.exec(["python3", "-c", RUNNER, *args], timeout=timeout + BACKSTOP_S, cwd=self.sb.workdir, **stream)
        out = res.stdout
        idx = out.rfind("\n" + SENTINEL)
        if idx < 0:
            why = "timed out" if res.timed_out else res.summary()
            raise WorkspaceError(f"the workspace helper failed ({why}): {(res.stderr or out)[-800:]}")
        info = json.loads(out[idx + len(SENTINEL) + 1:].strip().splitlines()[0])
        return Output(out[:idx], info)

    def bash(self, command: str, timeout: int, call_id: str) -> Output:
        out = self._runner("run", call_id, str(timeout), str(HEAD_CHARS), str(TAIL_CHARS), str(MAX_SUBMISSION_FILE),
                           "--", command, timeout=timeout)
        self._fresh_manifest = out.info.pop("manifest", None)  # the next sync uses it instead of asking again
        return out

    def start_job(self, name: str, command: str) -> dict:
        return self._runner("job-start", name, command, timeout=30).info

    def job_status(self, name: str, tail: int = 30) -> dict:
        return self._runner("job-status", name, str(tail), timeout=30).info

    def wait_job(self, name: str, seconds: float, tail: int = 30,
                 on_output: Callable[[bytes], None] | None = None) -> dict:
        """Wait for a job. With ``on_output`` its log streams while waiting: every byte it gained
        since the last such wait, to ``on_output`` and to the host copy ``logs/job-<name>.log``
        (raw, so its size is where the next wait, even in a resumed run, goes on from)."""
        if on_output is None:
            return self._runner("job-wait", name, str(int(seconds)), str(tail), timeout=seconds + 15).info
        copy = self.job_log_copy(name)
        start = self._job_offsets.get(name)
        if start is None:
            start = copy.stat().st_size if copy is not None and copy.is_file() else 0
        f = None
        if copy is not None:
            copy.parent.mkdir(parents=True, exist_ok=True)
            f = copy.open("ab")

        follow: list[Callable[[bytes], None]] = [on_output]

        def got(chunk: bytes) -> None:
            if f is not None:
                f.write(chunk)
                f.flush()
            if follow:
                try:
                    follow[0](chunk)
                except Exception:  # noqa: BLE001 - a view of the log: the copy and the wait go on
                    follow.clear()

        try:
            info = self._runner("job-wait", name, str(int(seconds)), str(tail), str(start), timeout=seconds + 15,
                                on_stderr=got).info
        finally:
            if f is not None:
                f.close()
        if isinstance(info.get("log_offset"), int):
            self._job_offsets[name] = info["log_offset"]
        return info

    def job_log_copy(self, name: str) -> Path | None:
        """The host's live copy of a job's log (None for a name unfit for a file name)."""
        return self.run_dir / "logs" / f"job-{name}.log" if JOB_NAME.fullmatch(name or "") else None

    def stop_job(self, name: str) -> dict:
        return self._runner("job-stop", name, timeout=30).info

    def jobs(self) -> list[dict]:
        return self._runner("jobs", timeout=30).info

    def running_jobs(self) -> list[str]:
        return [j["name"] for j in self.jobs() if j.get("state") in ("running", "starting")]

    def search(self, pattern: str, path: str, limit: int = 100) -> dict:
        return self._runner("search", pattern, path, str(limit), timeout=60).info

    # --- files --------------------------------------------------------------------------------
    def read_text(self, path: str, max_bytes: int = 4 << 20) -> str:
        try:
            return self.sb.read_file(path, max_bytes=max_bytes).decode("utf-8", "replace")
        except FileNotFoundError as exc:
            raise WorkspaceError(f"{path}: no such file in the workspace") from exc
        except IsADirectoryError as exc:
            raise WorkspaceError(f"{path} is a folder; use bash `ls` to list it") from exc
        except SandboxError as exc:
            raise WorkspaceError(f"{path}: {exc}") from exc

    def write_text(self, path: str, content: str) -> None:
        _check_path(path)
        self._fresh_manifest = None
        try:
            self.sb.write_file(path, content)
        except SandboxError as exc:
            raise WorkspaceError(f"{path}: {exc}") from exc
        if path.endswith(".sh"):
            self.sb.exec(["chmod", "+x", path], timeout=30, cwd=self.sb.workdir)

    # --- syncing and snapshots -----------------------------------------------------------------
    def remote_manifest(self) -> dict[str, list]:
        fresh, self._fresh_manifest = self._fresh_manifest, None
        if fresh is not None:
            return fresh["files"]
        return self._runner("manifest", str(MAX_SUBMISSION_FILE), timeout=60).info["files"]

    def sync(self, step: int | None = None) -> dict[str, list[str]]:
        """Bring the host's copy up to date; with ``step``, write steps/<step>.json. Returns the
        paths added, changed and removed since the last sync."""
        remote = self.remote_manifest()
        new = {rel: meta[1] for rel, meta in remote.items() if _submitted(rel)}
        added = sorted(set(new) - set(self.manifest))
        changed = sorted(r for r in set(new) & set(self.manifest) if new[r] != self.manifest[r])
        removed = sorted(set(self.manifest) - set(new))
        for rel in added + changed:
            blob = self.blobs / new[rel][:2] / new[rel]
            if not blob.exists():
                data = self.sb.read_file(rel, max_bytes=MAX_SUBMISSION_FILE)
                write_atomic(blob, data)
            dest = self.host / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(dest, blob.read_bytes())
            if remote[rel][2]:
                dest.chmod(0o755)
        for rel in removed:
            (self.host / rel).unlink(missing_ok=True)
        self.manifest = new
        write_json(self._manifest_path, new)
        if step is not None:
            write_json(self.steps / f"{step:04d}.json", {"step": step, "files": new})
        return {"added": added, "changed": changed, "removed": removed}



def _submitted(rel: str) -> bool:
    parts = rel.split("/")
    return not any(p in IGNORED_DIRS for p in parts[:-1]) and parts[0] not in IGNORED_DIRS


def _check_path(path: str) -> None:
    if not path or path.startswith("/") and not path.startswith("/workspace/"):
        raise WorkspaceError(f"{path!r}: give a path inside the workspace (relative, e.g. train.py)")
    if re.search(r"(^|/)\.\.(/|$)", path):
        raise WorkspaceError(f"{path!r}: '..' is not allowed")


__all__ = ["Output", "Workspace", "WorkspaceError", "workspace_name"]
