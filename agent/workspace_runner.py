"""Runs inside the workspace sandbox (sent as ``python3 -c <this file> MODE ...``; stdlib only).

Why a helper inside: a sandbox exec's own timeout kills every process of the sandbox user, and
that would take the agent's training jobs with it. Here each command gets a marker variable
(``REPRO_CALL=<id>``, ``REPRO_JOB=<name>``) inherited by everything it starts, so a timeout kills
exactly that command's processes — its process group, and any ``setsid``'d or double-forked
child still carrying the marker — and nothing else.

Modes (each prints its answer; structured answers are one JSON line after ``@@REPRO@@``):

* ``run CALL_ID TIMEOUT HEAD TAIL [MAX_BYTES] -- CMD``: bash CMD with stdout+stderr merged into
  .repro/logs/CALL_ID.log (capped); prints head + tail; leftovers of the call are killed at the end;
  with MAX_BYTES the answer also holds the workspace's manifest afterwards (one exec, not two);
* ``job-start NAME CMD`` / ``job-status NAME TAIL`` / ``job-wait NAME SECONDS TAIL [FROM]`` /
  ``job-stop NAME`` / ``jobs``: detached jobs with state in .repro/jobs/NAME/; ``job-wait`` with
  FROM (a byte offset in the job's log) writes the log from there to stderr as it grows;
* ``search PATTERN PATH LIMIT``: lines matching a regular expression, as path:line: text;
* ``manifest MAX_BYTES``: the workspace's files (size, sha256), minus what is never submitted.
"""
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque

ROOT = os.getcwd()
STATE = os.path.join(ROOT, ".repro")
SENTINEL = "@@REPRO@@"
LOG_CAP = 16 << 20
# never part of the submission (outputs, caches, our own state); keep in step with graders.contract
IGNORED_DIRS = {".repro", "results", "__pycache__", ".git", "checkpoints", "smoke", "wandb", ".cache", "outputs",
                ".home"}


def answer(obj):
    sys.stdout.write("\n" + SENTINEL + json.dumps(obj) + "\n")
    sys.stdout.flush()


def marked(var, value):
    """PIDs of this user's processes whose environment holds VAR=VALUE."""
    needle = (var + "=" + value).encode()
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(name))
        except OSError:
            continue
    return pids


def kill_marked(var, value, pgid=None):
    killed = 0
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for _ in range(5):  # a dying parent may still fork: sweep until nothing is left
        pids = marked(var, value)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.05)
    return killed


def env_with(var, value):
    env = dict(os.environ)
    env[var] = value
    return env


# ---------------------------------------------------------------- run
def run(call_id, timeout, head_n, tail_n, cmd, with_manifest=False):
    logs = os.path.join(STATE, "logs")
    os.makedirs(logs, exist_ok=True)
    log_rel = ".repro/logs/%s.log" % call_id
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env_with("REPRO_CALL", call_id), start_new_session=True)
    head, tail, total, written = bytearray(), deque(), 0, 0
    tail_size = 0
    head_cap, tail_cap = 4 * head_n, 4 * tail_n  # bytes; decoded and cut to characters at the end
    timed_out = False
    exited_at = None
    fd = proc.stdout.fileno()
    with open(os.path.join(ROOT, log_rel), "wb") as log:
        while True:
            now = time.monotonic()
            if now - t0 >= timeout:
                timed_out = True
                break
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 0.3:  # a background child still holds the pipe
                    break
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if proc.poll() is not None:
                    break
                continue
            total += len(chunk)
            if written < LOG_CAP:
                log.write(chunk[: LOG_CAP - written])
                written += min(len(chunk), LOG_CAP - written)
            if len(head) < head_cap:
                take = head_cap - len(head)
                head += chunk[:take]
                chunk = chunk[take:]
            if chunk:
                tail.append(chunk)
                tail_size += len(chunk)
                while tail and tail_size - len(tail[0]) >= tail_cap:
                    tail_size -= len(tail.popleft())
    proc.poll()  # reap the main process if it ended, so it is not counted among the leftovers
    leftovers = 0 if timed_out else len(marked("REPRO_CALL", call_id))
    kill_marked("REPRO_CALL", call_id, pgid=proc.pid)
    rc = proc.wait()
    head_text = head.decode("utf-8", "replace")
    head_s, spill = head_text[:head_n], head_text[head_n:]
    tail_text = spill + b"".join(tail).decode("utf-8", "replace")
    tail_s = tail_text[-tail_n:] if tail_n else ""
    if total <= len(head):  # everything fit in the head buffer: nothing is elided
        head_s, tail_s = head_text[: head_n + tail_n], ""
    shown = len(head_s) + len(tail_s)
    elided = max(0, total - len(head_s.encode("utf-8", "replace")) - len(tail_s.encode("utf-8", "replace")))
    sys.stdout.write(head_s)
    if elided:
        sys.stdout.write("\n[... %d bytes elided: the whole output is in %s ...]\n" % (elided, log_rel))
    sys.stdout.write(tail_s)
    out = {"returncode": 124 if timed_out else (128 - rc if rc < 0 else rc), "timed_out": timed_out,
           "seconds": round(time.monotonic() - t0, 2), "bytes": total, "elided_bytes": elided, "log": log_rel,
           "log_capped": total > LOG_CAP, "leftovers_killed": 0 if timed_out else leftovers, "shown_chars": shown}
    if with_manifest:  # the files after the command, in the same exec: the host's sync needs no second one
        out["manifest"] = files_manifest(with_manifest)
    answer(out)


# ---------------------------------------------------------------- jobs
def job_dir(name):
    return os.path.join(STATE, "jobs", name)


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is not running
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def status(name, tail_n=30):
    d = job_dir(name)
    if not os.path.isdir(d):
        return {"name": name, "exists": False}
    started = float(read(os.path.join(d, "started_at"), "0") or 0)
    rc = read(os.path.join(d, "exit_code"))
    pid = int(read(os.path.join(d, "pid"), "0") or 0)
    ended = read(os.path.join(d, "ended_at"))
    if rc is not None:
        state = "stopped" if os.path.exists(os.path.join(d, "stopped")) else ("succeeded" if rc == "0" else "failed")
    elif pid and alive(pid):
        state = "running"
    elif pid:
        state = "lost"  # the supervisor died without an exit code (the workspace restarted)
    else:
        state = "starting"
    elapsed = (float(ended) if ended else time.time()) - started if started else 0.0
    lines = []
    if tail_n:
        try:
            with open(os.path.join(d, "log"), "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                lines = f.read().decode("utf-8", "replace").splitlines()[-tail_n:]
        except OSError:
            pass
    return {"name": name, "exists": True, "state": state, "exit_code": None if rc is None else int(rc),
            "seconds": round(elapsed, 1), "command": read(os.path.join(d, "command"), ""),
            "log": ".repro/jobs/%s/log" % name, "starts": int(read(os.path.join(d, "starts"), "0") or 0),
            "tail": lines}


def job_start(name, cmd):
    d = job_dir(name)
    try:
        os.makedirs(d)
    except FileExistsError:  # idempotent: a job with this name exists (maybe from before a resume)
        answer({**status(name), "already": True})
        return
    write_atomic(os.path.join(d, "command"), cmd)
    write_atomic(os.path.join(d, "starts"), "1")
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            supervise(name, cmd, d)
        os._exit(0)
    deadline = time.time() + 10
    while time.time() < deadline and not os.path.exists(os.path.join(d, "pid")):
        time.sleep(0.05)
    answer({**status(name), "already": False})


def supervise(name, cmd, d):
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        log = open(os.path.join(d, "log"), "ab")
        log.write(("[job %s started %s]\n" % (name, time.strftime("%Y-%m-%d %H:%M:%S"))).encode())
        log.flush()
        write_atomic(os.path.join(d, "started_at"), repr(time.time()))
        child = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 env=env_with("REPRO_JOB", name), start_new_session=True, cwd=ROOT)
        write_atomic(os.path.join(d, "pid"), str(os.getpid()))
        write_atomic(os.path.join(d, "child_pid"), str(child.pid))
        rc = child.wait()
        log.write(("\n[job %s ended with exit code %d]\n" % (name, rc)).encode())
        log.close()
        write_atomic(os.path.join(d, "ended_at"), repr(time.time()))
        write_atomic(os.path.join(d, "exit_code"), str(128 - rc if rc < 0 else rc))
    finally:
        os._exit(0)


def follow_log(name, pos):
    """The job's log from byte ``pos`` on, to stderr as it is (the host streams it); the new end."""
    path = os.path.join(job_dir(name), "log")
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            if pos > f.tell():  # not this log's offset (a log written anew): from its start
                pos = 0
            f.seek(pos)
            while True:
                data = f.read(1 << 16)
                if not data:
                    break
                sys.stderr.buffer.write(data)
                sys.stderr.buffer.flush()
                pos += len(data)
    except OSError:
        pass
    return pos


def job_wait(name, seconds, tail_n, follow=None):
    """Wait for the job; with ``follow`` (a byte offset in its log) stream the log from there to
    stderr while waiting, and say in the answer where it got to (``log_offset``)."""
    deadline = time.time() + seconds
    st = status(name, 0)
    while st.get("exists") and st["state"] in ("running", "starting") and time.time() < deadline:
        if follow is not None:
            follow = follow_log(name, follow)
        time.sleep(0.5 if follow is not None else 1.0)
        st = status(name, 0)
    out = status(name, tail_n)
    if follow is not None:
        out["log_offset"] = follow_log(name, follow)
    answer(out)


def job_stop(name):
    d = job_dir(name)
    st = status(name, 0)
    if st.get("exists") and st["state"] in ("running", "starting"):
        write_atomic(os.path.join(d, "stopped"), "1")
        child = int(read(os.path.join(d, "child_pid"), "0") or 0)
        kill_marked("REPRO_JOB", name, pgid=child or None)
        deadline = time.time() + 10
        while time.time() < deadline and status(name, 0)["state"] == "running":
            time.sleep(0.1)
    answer(status(name, 10))


def jobs():
    root = os.path.join(STATE, "jobs")
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    answer([status(n, 0) for n in names])


# ---------------------------------------------------------------- files
def manifest(max_bytes):
    answer(files_manifest(max_bytes))


def files_manifest(max_bytes):
    files, skipped = {}, []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not os.path.islink(os.path.join(dirpath, d)))
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            rel = os.path.relpath(p, ROOT)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            size = os.path.getsize(p)
            if size > max_bytes:
                skipped.append([rel, size])
                continue
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            files[rel] = [size, h.hexdigest(), os.access(p, os.X_OK)]
    return {"files": files, "too_large": skipped}


def search(pattern, path, limit):
    """path:line: text for every line matching the regular expression (text files only)."""
    import re

    rx = re.compile(pattern)
    hits, root = [], os.path.normpath(os.path.join(ROOT, path))
    if not (root == ROOT or root.startswith(ROOT + os.sep)):
        answer({"error": "the path must be inside the workspace", "hits": []})
        return
    files = [root] if os.path.isfile(root) else []
    for dirpath, dirnames, filenames in ([] if files else os.walk(root)):
        dirnames[:] = sorted(d for d in dirnames if d not in (".repro", "__pycache__", ".home", ".git"))
        files += [os.path.join(dirpath, f) for f in sorted(filenames)]
    for p in files:
        if len(hits) >= limit or os.path.islink(p) or os.path.getsize(p) > (8 << 20):
            continue
        with open(p, "rb") as f:
            data = f.read()
        if b"\0" in data[:4096]:
            continue  # binary
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if rx.search(line):
                hits.append("%s:%d: %s" % (os.path.relpath(p, ROOT), n, line.strip()[:300]))
                if len(hits) >= limit:
                    break
    answer({"hits": hits, "truncated": len(hits) >= limit})


def main(argv):
    mode = argv[0]
    if mode == "run":
        sep = argv.index("--")
        call_id, timeout, head_n, tail_n = argv[1], float(argv[2]), int(argv[3]), int(argv[4])
        with_manifest = int(argv[5]) if sep > 5 else 0  # MAX_BYTES: add the manifest to the answer
        run(call_id, timeout, head_n, tail_n, " ".join(argv[sep + 1:]) if len(argv) > sep + 2 else argv[sep + 1],
            with_manifest)
    elif mode == "job-start":
        job_start(argv[1], argv[2])
    elif mode == "job-status":
        answer(status(argv[1], int(argv[2])))
    elif mode == "job-wait":
        job_wait(argv[1], float(argv[2]), int(argv[3]), int(argv[4]) if len(argv) > 4 else None)
    elif mode == "job-stop":
        job_stop(argv[1])
    elif mode == "jobs":
        jobs()
    elif mode == "search":
        search(argv[1], argv[2], int(argv[3]))
    elif mode == "manifest":
        manifest(int(argv[1]))
    else:
        raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main(sys.argv[1:])
