"""The asset broker's three tools: the paper's own models, datasets and packages, fetched by the
host (never by the workspace, which has no network) into a cache every sandbox of the run sees."""
from __future__ import annotations

from agent.tools import ToolContext, ToolResult, handler
from agent.tools.specs import RequestDataset, RequestModel, RequestPackages
from sandbox.broker import AssetRefused, catalogue

NEXT = {"offline": "work with what is local", "unreachable": "work with what is local, or ask again later",
        "not_found": "check the id (paper_search for the exact name)", "too_large": "ask for fewer files or a "
        "smaller variant", "blacklisted": "the paper forbids it: use another source",
        "not_allowed": "the user has not allowed that source", "gated": "the user must accept its terms"}


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _granted(rec) -> ToolResult:
    s = rec.summary()
    where = "catalogue (shipped offline)" if s["source"] == "catalogue" else f"{s['source']} @ {s['revision']}"
    text = (f"{s['kind']} {s['id']} is available: {where}, {s['files']} files, {_size(s['bytes'])}, licence "
            f"{s['licence'] or 'unknown'}, sha256 {s['sha256'][:16]}….\nUse it: {s['how']}\nIn the sandbox: "
            f"{s['sandbox_path']}")
    return ToolResult(text, meta={"asset": s})


def _refused(kind: str, ident: str, exc: AssetRefused) -> ToolResult:
    entry = catalogue.closest("dataset" if kind == "dataset" else "model", ident) if kind != "packages" else None
    local = f" Closest local {kind}: {entry.about}: {entry.how}" if entry else ""
    return ToolResult(f"refused ({exc.code}): {exc.reason}. Next: {NEXT.get(exc.code, 'work with what is local')}."
                      f"{local}", ok=False, meta={"refused": exc.code})


def _no_broker() -> ToolResult:
    return ToolResult("refused: this run has no asset broker; only the image's assets ($REPRO_MODELS, "
                      "$REPRO_DATA) are available", ok=False)


@handler("request_model")
def request_model(a: RequestModel, ctx: ToolContext) -> ToolResult:
    if ctx.broker is None:
        return _no_broker()
    try:
        return _granted(ctx.broker.request_model(a.id, a.revision or None, a.files or None))
    except AssetRefused as exc:
        return _refused("model", a.id, exc)


@handler("request_dataset")
def request_dataset(a: RequestDataset, ctx: ToolContext) -> ToolResult:
    if ctx.broker is None:
        return _no_broker()
    try:
        granted = _granted(ctx.broker.request_dataset(a.id, a.config or None, a.revision or None))
        ctx.ws.link_datasets()  # visible to load_dataset in this workspace from the next command on
        return granted
    except AssetRefused as exc:
        return _refused("dataset", a.id, exc)


@handler("request_packages")
def request_packages(a: RequestPackages, ctx: ToolContext) -> ToolResult:
    if ctx.broker is None:
        return _no_broker()
    try:
        return _granted(ctx.broker.request_packages(a.requirements))
    except AssetRefused as exc:
        return _refused("packages", " ".join(a.requirements), exc)
