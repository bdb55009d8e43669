"""Every tool the coding agent has: its arguments (a pydantic model) and the description the
model reads. This module is the one place they are written down: the model is shown
``tool_schemas()`` and docs/tools.md is generated from the same data (a test keeps them equal).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BASH_DEFAULT_TIMEOUT = 180
BASH_MAX_TIMEOUT = 600
WAIT_MAX_SECONDS = 600


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bash(Args):
    """Run a shell command in the workspace (a fresh bash each time: no state carries over but the
    files). Output comes back as its head and tail with the full log's path. The command and any
    process it started are killed when the timeout passes. Use start_job for anything longer."""

    command: str = Field(min_length=1, max_length=8000, description="bash command line, run in /workspace")
    timeout: int = Field(BASH_DEFAULT_TIMEOUT, ge=1, le=BASH_MAX_TIMEOUT, description="seconds (default 180, at most 600)")


class StartJob(Args):
    """Start a long command (training, the smoke run of reproduce.sh) detached, with its output in a
    log. Starting a job whose name exists returns its status instead: a job never runs twice."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$", description="a short name for the job")
    command: str = Field(min_length=1, max_length=4000, description="bash command line, run in /workspace")


class JobStatus(Args):
    """Whether a job runs, its exit code when it ended, how long it ran, and the last lines of its log."""

    name: str = Field(description="the job's name")
    tail: int = Field(30, ge=0, le=400, description="how many log lines to show")


class WaitJob(Args):
    """Wait until a job ends or the seconds pass, then show its status and log tail."""

    name: str = Field(description="the job's name")
    seconds: int = Field(300, ge=1, le=WAIT_MAX_SECONDS, description="at most this long (max 600)")


class StopJob(Args):
    """Stop a job and every process it started."""

    name: str = Field(description="the job's name")


class ReadFile(Args):
    """Read a text file of the workspace, a page of lines at a time (numbered)."""

    path: str = Field(description="path relative to /workspace")
    offset: int = Field(1, ge=1, description="first line to show (1-based)")
    limit: int = Field(200, ge=1, le=1000, description="how many lines")


class Search(Args):
    """Find a regular expression in the workspace's text files: file:line: text, at most 100 hits."""

    pattern: str = Field(min_length=1, max_length=500, description="Python regular expression")
    path: str = Field(".", description="file or folder to search, relative to /workspace")


class WriteFile(Args):
    """Create or replace a file of the workspace with this content."""

    path: str = Field(description="path relative to /workspace")
    content: str = Field(max_length=200_000, description="the whole new content")


class EditFile(Args):
    """Replace one exact, unique occurrence of `old` with `new` in a file."""

    path: str = Field(description="path relative to /workspace")
    old: str = Field(min_length=1, description="text to replace: must occur exactly once")
    new: str = Field(description="replacement text")


class PaperSection(Args):
    """The text of one section of the paper (by its heading or a word of it), with its page."""

    name: str = Field(description="section heading, e.g. 'Experiments' or '4.2'")


class PaperTable(Args):
    """One table of the paper with its caption, page and cells."""

    id: str = Field(description="table id, e.g. 'Table 1'")


class PaperSearch(Args):
    """Sentences of the paper containing this text, each with its page."""

    text: str = Field(min_length=2, max_length=200, description="words to look for")


class Scaffold(Args):
    """Write a tested recipe into the workspace as a starting point for one experiment of the plan:
    its training script (shared by recipes of one family), its line in reproduce.sh and README.md.
    Edit the files afterwards as the paper needs; the report marks scaffolded files and each edit."""

    recipe: str = Field(description="a recipe name (the task lists them)")
    experiment: str = Field(description="the plan's experiment id this recipe implements")


HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9_.-]{1,96})?$"


class RequestModel(Args):
    """Ask the host's asset broker for a model of the Hugging Face Hub (the workspace has no network).
    When allowed, the host fetches it into a read-only cache this workspace and the reproduction
    see; load it by the same id, e.g. AutoModel.from_pretrained("bert-base-uncased"). The answer says
    what is available, or why not (offline, not allowed, on the paper's blacklist, too large, not found)."""

    id: str = Field(pattern=HUB_ID, description="the Hub id, e.g. 'bert-base-uncased' or 'org/name'")
    revision: str = Field("", max_length=100, description="branch, tag or commit; empty = the default branch")
    files: list[str] = Field(default_factory=list, max_length=20,
                             description="glob patterns of the files to fetch; empty = PyTorch weights and configs")


class RequestDataset(Args):
    """Ask the host's asset broker for a dataset of the Hugging Face Hub; then load it by its id,
    e.g. datasets.load_dataset("stanfordnlp/sst2") (served offline from the read-only cache)."""

    id: str = Field(pattern=HUB_ID, description="the Hub id, e.g. 'stanfordnlp/sst2'")
    config: str = Field("", max_length=100, description="the configuration name, e.g. 'sst2' of 'nyu-mll/glue'")
    revision: str = Field("", max_length=100, description="branch, tag or commit; empty = the default branch")


class RequestPackages(Args):
    """Ask the host's asset broker for Python packages (wheels, with their dependencies) into a
    wheelhouse; then `python -m pip install NAME` in the workspace and in reproduce.sh installs them
    with no network. Put them in requirements.txt so the reproduction installs them too."""

    requirements: list[str] = Field(min_length=1, max_length=20,
                                    description="requirement strings, e.g. ['scikit-learn==1.5.2', 'tabulate']")


class Submit(Args):
    """Finish: the workspace as it is becomes the submission, re-run from scratch by reproduce.sh.
    Refused while jobs run, and until reproduce.sh has passed a smoke run (REPRO_SMOKE=1) since the
    last change to the files, unless the budget is nearly spent."""

    note: str = Field(max_length=2000, description="what was done, what was not, and why")


SPECS: dict[str, type[Args]] = {
    "bash": Bash, "start_job": StartJob, "job_status": JobStatus, "wait_job": WaitJob, "stop_job": StopJob,
    "read_file": ReadFile, "search": Search, "write_file": WriteFile, "edit_file": EditFile,
    "paper_section": PaperSection, "paper_table": PaperTable, "paper_search": PaperSearch,
    "scaffold": Scaffold, "request_model": RequestModel, "request_dataset": RequestDataset,
    "request_packages": RequestPackages, "submit": Submit,
}
ToolName = Literal["bash", "start_job", "job_status", "wait_job", "stop_job", "read_file", "search", "write_file",
                   "edit_file", "paper_section", "paper_table", "paper_search", "scaffold", "request_model",
                   "request_dataset", "request_packages", "submit"]
#: tools that may change the workspace's files (a sync and a snapshot follow them)
CHANGES_FILES = {"bash", "write_file", "edit_file", "scaffold", "wait_job", "job_status", "stop_job", "start_job"}


def _clean(schema: dict) -> dict:
    """pydantic's JSON schema without titles (noise for a model; some grammars dislike them)."""
    if isinstance(schema, dict):
        return {k: _clean(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def tool_schema(name: str, *, narrow: dict[str, list] | None = None) -> dict:
    """{"name", "description", "parameters"} for one tool. ``narrow`` replaces an argument's
    schema by an enum of the given values (the guide's constrained menus for weak models)."""
    spec = SPECS[name]
    params = _clean(spec.model_json_schema())
    params.pop("description", None)  # it is the tool's description, given once beside the schema
    params["additionalProperties"] = False
    for arg, values in (narrow or {}).items():
        kind = "integer" if values and all(isinstance(v, int) for v in values) else "string"
        params["properties"][arg] = {"type": kind, "enum": list(values)}
    # a weak model must still send every argument it is told about; defaults stay documented
    return {"name": name, "description": " ".join((spec.__doc__ or "").split()), "parameters": params}


def tool_schemas(names: list[str] | None = None) -> list[dict]:
    return [tool_schema(n) for n in (names or list(SPECS))]


def docs_markdown() -> str:
    """docs/tools.md, generated: the same words and schemas the model is shown."""
    out = ["# The coding agent's tools", "",
           "Generated from `agent/tools/specs.py` (the model is shown exactly these descriptions and "
           "argument schemas); `python -m agent.tools.specs > docs/tools.md` rewrites this file.", ""]
    for name, spec in SPECS.items():
        out += [f"## `{name}`", "", " ".join((spec.__doc__ or "").split()), "", "| argument | type | default | meaning |",
                "|---|---|---|---|"]
        for field, info in spec.model_fields.items():
            typ = getattr(info.annotation, "__name__", str(info.annotation))
            default = "required" if info.is_required() else repr(info.default)
            out.append(f"| `{field}` | {typ} | {default} | {info.description or ''} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(docs_markdown(), end="")
