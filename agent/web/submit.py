"""The "New replication" form: the model endpoints a user may choose, and an upload turned into a run.

Everything is checked before anything is queued: the form's numbers, the PDF (the same hardened
ingestion as `repro run`: not a PDF, encrypted without the password, scanned without OCR...), a
given rubric, the chosen endpoint, the sandbox image and the disk. A rejected upload leaves nothing
behind. Files are stored under the run directory with names this module chooses
(input/paper.pdf, input/rubric.json, input/addendum.md — PaperBench's layout, which the planner
and grader read); a client's file name only ever becomes the run id's readable stem, filtered to
letters, digits and dashes.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.config import Budgets, ModelConfig, RunConfig

UPLOADS = ".uploads"  # staging: not a run id (a dot), so never listed
MAX_UPLOAD_MB = 64  # a paper PDF, a rubric and an addendum together
MAX_SIDE_FILE_BYTES = 4 << 20  # rubric.json / addendum.md


class SubmitError(ValueError):
    """The submission cannot be queued; ``problems`` are the sentences shown on the form."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Endpoint:
    name: str
    label: str
    model: ModelConfig


def configured_endpoints(endpoints_file: Path | None = None) -> list[Endpoint]:
    """The endpoints the server's owner configured: a user picks one, and never types a key — keys
    stay in the server's environment (OPENAI_API_KEY), read by the run's process only."""
    from agent.scripted import ENV_VAR

    if os.environ.get(ENV_VAR):  # tests: a scripted model replaces every endpoint in every run
        return [Endpoint("scripted", f"scripted model (${ENV_VAR})", ModelConfig(model="scripted"))]
    out = [Endpoint("embedded", "embedded SmolLM2-135M (offline, weak)", ModelConfig())]
    env = ModelConfig.from_env()
    if not env.embedded:
        out.insert(0, Endpoint("default", f"{env.model or 'gpt-4o-mini'} at {env.base_url or 'api.openai.com'} "
                                          "(the server's $REPRO_MODEL / $OPENAI_BASE_URL)", env))
    if endpoints_file is not None:
        for item in yaml.safe_load(Path(endpoints_file).read_text()) or []:
            mc = ModelConfig(model=item.get("model"), base_url=item.get("base_url"))
            out.append(Endpoint(str(item["name"]), item.get("label") or f"{mc.model} at {mc.base_url or 'api.openai.com'}",
                                mc))
    return out


def _int(form: dict, key: str, what: str, lo: int, hi: int, problems: list[str], default: int | None = None):
    raw = str(form.get(key) or "").strip()
    if not raw:
        return default
    try:
        v = int(raw)
    except ValueError:
        problems.append(f"{what}: {raw!r} is not a whole number")
        return default
    if not lo <= v <= hi:
        problems.append(f"{what}: {v} is outside {lo}–{hi}")
        return default
    return v


def _float(form: dict, key: str, what: str, lo: float, problems: list[str]) -> float | None:
    raw = str(form.get(key) or "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        problems.append(f"{what}: {raw!r} is not a number")
        return None
    if v < lo or v != v:
        problems.append(f"{what}: must be at least {lo}")
        return None
    return v


def settings(form: dict, endpoints: list[Endpoint]) -> dict[str, Any]:
    """The run's settings from the form's fields (everything but the files), or SubmitError."""
    problems: list[str] = []
    chosen = next((e for e in endpoints if e.name == form.get("endpoint")), None)
    if chosen is None:
        problems.append("model: choose one of the configured endpoints")
    out: dict[str, Any] = {
        "endpoint": chosen,
        "train_limit": _int(form, "train_limit", "scale-down (training examples)", 1, 10_000_000, problems),
        "epochs": _int(form, "epochs", "epochs", 1, 1000, problems),
        "seeds": _int(form, "seeds", "seeds", 1, 20, problems, default=1),
        "max_steps": _int(form, "max_steps", "agent turns", 1, 1000, problems, default=60),
        "max_tokens": _int(form, "max_tokens", "token budget", 1000, 10**9, problems, default=2_000_000),
        "review": form.get("review") in ("on", "1", "true"),
    }
    wall = _float(form, "max_wall_min", "wall-time budget (minutes)", 1, problems)
    out["max_wall_s"] = (wall or 240) * 60
    out["max_dollars"] = _float(form, "max_dollars", "spend limit (US dollars)", 0, problems)
    if problems:
        raise SubmitError(problems)
    return out


BUNDLED_SIDE_FILES = ("rubric.json", "rubric.checks.json", "addendum.md", "blacklist.txt")


def bundled_paper(pdf: Path) -> Path | None:
    """The bundled paper (papers/<id>/) this upload is, byte for byte, if any."""
    import hashlib

    import papers

    digest = hashlib.sha256(pdf.read_bytes()).digest()
    for candidate in sorted(Path(papers.__file__).parent.glob("*/paper.pdf")):
        if hashlib.sha256(candidate.read_bytes()).digest() == digest:
            return candidate.parent
    return None


def adopt_bundled(staged: Path) -> str | None:
    """An upload of a bundled paper gets that paper's rubric, arithmetic checks and addendum (what
    `repro run papers/<id>/paper.pdf` reads beside the PDF) where the form gave none; says which."""
    source = bundled_paper(staged / "paper.pdf")
    if source is None:
        return None
    taken = []
    for name in BUNDLED_SIDE_FILES:
        if (source / name).is_file() and not (staged / name).exists():
            if name == "rubric.checks.json" and (staged / "rubric.json").exists() and "rubric.json" not in taken:
                continue  # checks belong to the bundled rubric, not to one the user uploaded
            shutil.copyfile(source / name, staged / name)
            taken.append(name)
    return f"the bundled paper papers/{source.name}" + (f" (its {', '.join(taken)} used)" if taken else "")


def stage_dir(runs_dir: Path) -> Path:
    d = Path(runs_dir) / UPLOADS / secrets.token_hex(8)
    d.mkdir(parents=True)
    return d


def new_config(run_id: str, runs_dir: Path, staged: Path, s: dict, *, parallel: int) -> RunConfig:
    """The run's frozen settings; its files are at their final place (runs_dir/run_id/input/)."""
    inp = Path(runs_dir).resolve() / run_id / "input"
    mc: ModelConfig = s["endpoint"].model
    cpus = (os.cpu_count() or 1) / parallel if parallel > 1 else None  # a fair share, as `repro eval` gives
    return RunConfig(
        run_id=run_id, runs_dir=Path(runs_dir).resolve(), paper_path=inp / "paper.pdf",
        rubric_path=(inp / "rubric.json") if (staged / "rubric.json").exists() else None,
        agent_model=mc, judge_model=mc, sandbox_backend="docker", train_limit=s["train_limit"], epochs=s["epochs"],
        budgets=Budgets(max_model_tokens=s["max_tokens"], max_wall_s=s["max_wall_s"], max_dollars=s["max_dollars"],
                        max_steps=s["max_steps"]),
        review=s["review"], seeds=s["seeds"], sandbox_cpus=cpus,  # assets: the server's $REPRO_ASSETS, as the CLI
    )


def check(staged: Path, cfg: RunConfig, password: str | None) -> str | None:
    """Every problem with the staged files and the chosen setup (SubmitError); the paper's title if none."""
    from agent.preflight import check_disk, check_model, check_rubric, check_sandbox
    from papers import PaperError, load_paper

    problems: list[str] = []
    title = None
    try:
        title = load_paper(staged / "paper.pdf", password=password or None).title
    except PaperError as exc:
        problems.append(f"paper: {_in_form_words(exc, staged / 'paper.pdf', password)}")
    if cfg.rubric_path is not None:
        staged_rubric = str(staged / "rubric.json")
        problems += ["rubric: " + p.message.replace(f"{staged_rubric}: ", "", 1).replace(staged_rubric, "rubric.json")
                     for p in check_rubric(cfg.model_copy(update={"rubric_path": staged / "rubric.json"}))]
    problems += [f"{p.what}: {p.message}" for p in check_disk(cfg.runs_dir) + check_sandbox(cfg)
                 + check_model(cfg.agent_model, "agent")]
    if problems:
        raise SubmitError(problems)
    return title


def _in_form_words(exc, path: Path, password: str | None) -> str:
    """Ingestion's message, told about the upload (not a staging path) and this form (not CLI flags)."""
    if exc.kind == "encrypted":
        return ("the PDF is encrypted and the password given does not open it: check the PDF password field"
                if password else "the PDF is encrypted with a password: enter it in the PDF password field")
    text = str(exc).replace(str(path), "the uploaded PDF")
    if exc.kind == "no_text":
        text = text.split(" Re-run with --ocr")[0] + " Upload a PDF with a text layer (run OCR on it first, e.g. ocrmypdf)."
    return text


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)
