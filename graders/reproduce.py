"""Reproduction: run ``reproduce.sh`` in a *fresh* sandbox from the submission alone.

PaperBench's rule: only files written after the run's start marker count as results. Every
file copied in is first back-dated to before the marker, so a result file the agent forged
(even one with a future mtime) can never pass as produced by the reproduction.

The output streams while the script runs: ``<out_dir>/reproduce.log`` is written as it comes (and
replaced at the end by the container's own copy, the same bytes), and ``on_progress`` gets the
recipes' progress lines (experiment, epoch, step, loss, the before/after numbers, errors), parsed
by ``ProgressLines`` and throttled; ``progress_text`` is the one compact line the CLI and the run
page show for each. The agent's smoke job is followed with the same parser (agent/tools/jobs.py).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from graders.contract import SEED_ENV, START_MARKER, read_results
from sandbox.broker.hub import DATASETS_LINK
from sandbox.output import Lines

LOG_NAME = "reproduce.log"
MARKER_NAME = START_MARKER

_BACKDATE = (
    "import os,sys\n"
    "t=float(sys.argv[1])\n"
    "for root,dirs,files in os.walk('.'):\n"
    "    for n in dirs+files:\n"
    "        p=os.path.join(root,n)\n"
    "        if not os.path.islink(p): os.utime(p,(t,t))\n"
)


@dataclass
class Reproduction:
    ok: bool
    returncode: int
    summary: str
    start_time: float
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False
    dir: str = ""
    #: experiment -> {"metrics", "before", "curves", "file", "info"} (graders.contract.read_results)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int | None = None
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --- progress lines -----------------------------------------------------------------------
#: what the recipes print (agent/recipes/templates): "epoch 0 step 40/120 loss 0.6931", "step 20/60
#: loss 2.3", "step 10 dpo loss 0.69 reward margin 0.1"; also the Trainer's own dicts ('loss': 0.69)
_STEP = re.compile(r"\bstep\s*[:=]?\s*(\d+)(?:\s*/\s*(\d+))?", re.I)
_LOSS = re.compile(r"""\bloss['"]?\s*[:=]?\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)""", re.I)
_EPOCH = re.compile(r"""\bepoch['"]?\s*[:=]?\s*(\d+(?:\.\d+)?)""", re.I)
#: a measured number: "accuracy before fine-tuning: 0.5", "mean reward after: 0.41 (before ...)",
#: "epoch 0 test accuracy 0.8123", "perplexity after fine-tuning (lora): 12.3"
_RESULT = re.compile(r"\b(before|after)\b[^:\n]*:\s*-?\d", re.I)
_AFTER = re.compile(r"\bafter\b[^:\n]*:\s*-?\d", re.I)
_EVAL = re.compile(r"\b(test|eval|validation|val|dev)\b[\w ]*\b(accuracy|f1|loss|perplexity|reward)\b\s*[:=]?\s*-?\d",
                   re.I)
#: a metric named with its number, in a line that is no step line ("head: accuracy 0.7100")
_METRIC = re.compile(r"\b(accuracy|acc|f1|macro[- ]f1|perplexity|ppl|reward|bleu|rouge\w*|auc|exact match|em)\b"
                     r"\s*[:=]?\s*-?\d", re.I)
_INFO = re.compile(r"^(data:|resuming\b|QLoRA:|all experiments finished)", re.I)
_ERROR = re.compile(r"^(Traceback \(most recent call last\)|[A-Za-z_][\w.]*(Error|Exception)\b:?|Killed\b|"
                    r"error:|fatal:)")
_OUT_ARG = re.compile(r"""--out(?:put(?:[-_]dir)?)?[= ]\s*["']?(?:\./)?results/([A-Za-z0-9_.-]+)""")
_METHOD_ARG = re.compile(r"""--method[= ]\s*["']?([A-Za-z0-9_.-]+)""")


def experiments_of(script: str) -> list[str]:
    """The experiments a reproduce.sh runs, in order: each command's ``--out results/<id>`` (the
    recipes' scaffold line), else its ``--method <name>``; [] when it names none."""
    seen: list[str] = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _OUT_ARG.search(line) or _METHOD_ARG.search(line)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def _number(rx: re.Pattern, text: str) -> float | None:
    m = rx.search(text)
    return float(m.group(1)) if m else None


class ProgressLines:
    """Turns a training script's output, line by line, into progress events (flat dicts of
    scalars) for the CLI and the run page, or None for a line not shown.

    * ``step`` lines (a step number, with a loss or an epoch) at most one per ``throttle_s``, but
      always an experiment's first and its last (step N/N);
    * ``result`` lines (a number before/after training, a test/eval metric, a named metric's
      number in a line that is no step line), ``info`` lines
      ("data: ...", "resuming ..."), and the first ``max_errors`` ``error`` lines, always.

    The experiment is tracked by order: ``experiments`` as reproduce.sh runs them, and each "...
    after ...: <number>" line (every recipe prints one as its last) ends the current one.
    """

    def __init__(self, experiments: list[str] | tuple[str, ...] = (), *, source: str = "reproduce",
                 throttle_s: float = 10.0, started: float | None = None, clock: Callable[[], float] = time.monotonic,
                 max_errors: int = 6):
        self.experiments = list(experiments)
        self.source = source
        self.throttle_s = throttle_s
        self.clock = clock
        self.started = clock() if started is None else started
        self.max_errors = max_errors
        self.index = 0  # the current experiment (0-based)
        self.errors = 0
        self._last_step_at: float | None = None
        self._steps_seen = 0  # step lines of the current experiment

    def feed(self, line: str) -> dict | None:
        text = line.strip()
        if not text:
            return None
        step_m = _STEP.search(text)
        loss, epoch = _number(_LOSS, text), _number(_EPOCH, text)
        if _RESULT.search(text) or _EVAL.search(text):
            ev = self._event("result", text)
            if _AFTER.search(text):  # the experiment's last line: the next line belongs to the next one
                self.index += 1
                self._steps_seen, self._last_step_at = 0, None
            return ev
        if (step_m and (loss is not None or epoch is not None)) or (loss is not None and epoch is not None):
            step = int(step_m.group(1)) if step_m else None
            steps = int(step_m.group(2)) if step_m and step_m.group(2) else None
            now = self.clock()
            first, last = self._steps_seen == 0, steps is not None and step >= steps
            self._steps_seen += 1
            if not (first or last or self._last_step_at is None or now - self._last_step_at >= self.throttle_s):
                return None
            self._last_step_at = now
            ev = self._event("step", text)
            ev.update(step=step, steps=steps, loss=loss, epoch=int(epoch) if epoch is not None and epoch.is_integer()
                      else epoch)
            return ev
        if _METRIC.search(text):
            return self._event("result", text)
        if _INFO.search(text):
            return self._event("info", text)
        if _ERROR.search(text) and self.errors < self.max_errors:
            self.errors += 1
            return self._event("error", text)
        return None

    def _event(self, kind: str, text: str) -> dict:
        total = len(self.experiments) or None
        # past the last experiment (the script's closing lines): none is named
        name = self.experiments[self.index] if self.index < len(self.experiments) else None
        return {"source": self.source, "kind": kind, "elapsed_s": round(self.clock() - self.started, 1),
                "experiment": name, "index": self.index + 1, "total": total, "text": text[:240]}


class ProgressStream:
    """An ``on_output`` callback (sandbox.base.Sandbox.exec) that splits the output into lines,
    parses each with ``parser`` and calls ``emit(event)`` for the lines shown; ``close()`` at the
    end hands on a last line that had no line end."""

    def __init__(self, parser: ProgressLines, emit: Callable[[dict], None]):
        self.parser = parser
        self.emit = emit
        self.lines = Lines(self._line)
        #: why it stopped following (a parser or ``emit`` raised); the log goes on regardless
        self.error: str | None = None

    def __call__(self, stream: int, chunk: bytes) -> None:
        self.lines(stream, chunk)

    def _line(self, stream: int, line: str) -> None:  # noqa: ARG002 - both streams are the script's output
        if self.error is not None:
            return
        try:
            ev = self.parser.feed(line)
            if ev is not None:
                self.emit(ev)
        except Exception as exc:  # noqa: BLE001 - progress is a view: it never stops the run or its log
            self.error = f"{type(exc).__name__}: {exc}"[:300]

    def close(self) -> None:
        self.lines.close()


def _clock_text(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_text(ev: dict) -> str:
    """The compact line for one progress event, as the CLI prints it and the run page shows it:
    ``reproduce 2:31 · lora 2/3 · epoch 0 · step 40/120 · loss 0.6931`` for a step, the script's own
    words for the rest: ``reproduce 4:02 · lora 2/3 · accuracy after fine-tuning (lora): 0.8123``."""
    parts = [f"{ev.get('source') or 'reproduce'} {_clock_text(float(ev.get('elapsed_s') or 0.0))}"]
    name, index, total = ev.get("experiment"), ev.get("index"), ev.get("total")
    known = bool(total and index and index <= total)  # past the last one: the script's closing lines
    if name or known:
        parts.append(f"{name or f'experiment {index}'} {index}/{total}" if known else name)
    if ev.get("kind") == "step":
        if ev.get("epoch") is not None:
            parts.append(f"epoch {ev['epoch']:g}" if isinstance(ev["epoch"], float) else f"epoch {ev['epoch']}")
        step, steps = ev.get("step"), ev.get("steps")
        if step is not None:
            parts.append(f"step {step}/{steps}" if steps else f"step {step}")
        if ev.get("loss") is not None:
            parts.append(f"loss {float(ev['loss']):.4f}")
    else:
        parts.append(("error: " if ev.get("kind") == "error" and not str(ev.get("text", "")).lower().startswith("error")
                      else "") + str(ev.get("text") or ""))
    return " · ".join(parts)


class LiveLog:
    """The reproduction's log on the host, written (and flushed) chunk by chunk as the script prints."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        self._f: BinaryIO | None = os.fdopen(fd, "wb")

    def __call__(self, stream: int, chunk: bytes) -> None:  # noqa: ARG002 - one log for both streams
        if self._f is not None:
            self._f.write(chunk)
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def collect_results(repro_dir: Path, start_time: float) -> tuple[dict[str, dict], list[str]]:
    """Results by the submission contract (graders.contract): files written at/after the marker."""
    return read_results(repro_dir, start_time)


def reproduce(
    submission_dir: Path,
    out_dir: Path,
    open_sandbox: Callable[[str], Any],
    *,
    timeout: float = 3600,
    progress: Callable[[str], None] = lambda line: None,
    seed: int | None = None,
    on_progress: Callable[[dict], None] | None = None,
    source: str = "reproduce",
    throttle_s: float = 10.0,
) -> Reproduction:
    """Run reproduce.sh in a fresh sandbox; copy the workspace back to ``out_dir`` (replaced).

    While it runs, ``out_dir/reproduce.log`` grows as the script prints (``out_dir`` is emptied
    first: it holds this run's files only), and ``on_progress`` gets its progress events
    (``ProgressLines``: ``source`` names the run in them, ``throttle_s`` spaces the step lines)."""
    submission_dir = Path(submission_dir)
    if not (submission_dir / "reproduce.sh").is_file():
        raise FileNotFoundError(f"{submission_dir}/reproduce.sh is missing: nothing to reproduce")
    experiments = experiments_of((submission_dir / "reproduce.sh").read_text(errors="replace"))
    with open_sandbox("reproduce") as sb:
        sb.copy_in(submission_dir)
        # Marker on a whole second (tar keeps 1 s mtime resolution), strictly after the back-date.
        start = float(int(time.time()) + 2)
        sb.exec(["python", "-c", _BACKDATE, str(start - 2)], timeout=120, cwd=sb.workdir)
        time.sleep(max(0.0, start - time.time()))
        sb.write_file(MARKER_NAME, f"{start}\n")
        if Path(out_dir).exists():  # an earlier attempt's files: this run's log goes in their place
            shutil.rmtree(out_dir)
        live = LiveLog(Path(out_dir) / LOG_NAME)
        follow = ProgressStream(ProgressLines(experiments, source=source, throttle_s=throttle_s),
                                on_progress or (lambda ev: None))

        def on_output(stream: int, chunk: bytes) -> None:
            live(stream, chunk)
            follow(stream, chunk)

        progress("reproduce.sh started in a fresh sandbox")
        t0 = time.monotonic()
        env = {SEED_ENV: str(seed)} if seed is not None else None
        # the asset broker's prepared datasets, mirrored into this container's writable cache first
        try:
            res = sb.exec(["bash", "-c", f"({DATASETS_LINK}) >/dev/null 2>&1; set -o pipefail; "
                                         f"bash reproduce.sh 2>&1 | tee {LOG_NAME}"],
                          timeout=timeout, cwd=sb.workdir, env=env, on_output=on_output)
            follow.close()
        finally:
            live.close()
        duration = time.monotonic() - t0
        Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".repro-copy-", dir=Path(out_dir).parent))
        try:
            sb.copy_out(sb.workdir, tmp, max_bytes=512 << 20)
            (copied,) = [p for p in tmp.iterdir() if p.is_dir()]
            if not (copied / LOG_NAME).exists() and live.path.exists():
                # the script never started (or removed its log): keep what streamed out of the sandbox
                shutil.copyfile(live.path, copied / LOG_NAME)
            if Path(out_dir).exists():
                shutil.rmtree(out_dir)
            copied.rename(out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log_path = Path(out_dir) / LOG_NAME
    if not log_path.exists():  # nothing streamed either: keep what the sandbox returned
        log_path.write_text(res.stdout + res.stderr)
    results, ignored = collect_results(Path(out_dir), start)
    return Reproduction(
        ok=res.ok, returncode=res.returncode, summary=res.summary(), start_time=start, duration_s=round(duration, 1),
        timed_out=res.timed_out, oom_killed=res.oom_killed, dir=str(out_dir), results=results, ignored=ignored,
        seed=seed,
    )
