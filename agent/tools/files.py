"""Files of the workspace: paged reads, search, whole writes, exact-match edits, scaffolds."""
from __future__ import annotations

import hashlib
import re

from agent.recipes import registry, scaffold_files
from agent.tools import ToolContext, ToolResult, handler
from agent.tools.specs import EditFile, ReadFile, Scaffold, Search, WriteFile
from agent.workspace import WorkspaceError


@handler("read_file")
def read_file(a: ReadFile, ctx: ToolContext) -> ToolResult:
    lines = ctx.ws.read_text(a.path).splitlines()
    if not lines:
        return ToolResult(f"{a.path} is empty")
    if a.offset > len(lines):
        return ToolResult(f"{a.path} has {len(lines)} lines; offset {a.offset} is past the end", ok=False)
    end = min(len(lines), a.offset + a.limit - 1)
    body = "\n".join(f"{n:5d}  {lines[n - 1][:400]}" for n in range(a.offset, end + 1))
    more = f"\n[lines {a.offset}-{end} of {len(lines)}; read on with offset={end + 1}]" if end < len(lines) else \
        f"\n[lines {a.offset}-{end} of {len(lines)}]"
    return ToolResult(body + more)


@handler("search")
def search(a: Search, ctx: ToolContext) -> ToolResult:
    try:
        re.compile(a.pattern)
    except re.error as exc:
        return ToolResult(f"error: not a valid regular expression ({exc})", ok=False, malformed=True)
    found = ctx.ws.search(a.pattern, a.path)
    if found.get("error"):
        return ToolResult(f"error: {found['error']}", ok=False)
    if not found["hits"]:
        return ToolResult(f"no match for {a.pattern!r} under {a.path}")
    more = "\n[first 100 matches only; narrow the pattern or the path]" if found.get("truncated") else ""
    return ToolResult("\n".join(found["hits"]) + more)


@handler("write_file")
def write_file(a: WriteFile, ctx: ToolContext) -> ToolResult:
    ctx.ws.write_text(a.path, a.content)
    n = a.content.count("\n") + (0 if a.content.endswith("\n") or not a.content else 1)
    return ToolResult(f"wrote {a.path} ({n} lines, {len(a.content)} characters)", meta={"path": a.path})


@handler("edit_file")
def edit_file(a: EditFile, ctx: ToolContext) -> ToolResult:
    text = ctx.ws.read_text(a.path)
    count = text.count(a.old)
    if count == 0:
        near = _closest_line(text, a.old)
        return ToolResult(f"error: the text to replace does not occur in {a.path}; copy it exactly (with its "
                          f"indentation) from read_file." + (f" The closest line is: {near!r}" if near else ""),
                          ok=False)
    if count > 1:
        return ToolResult(f"error: the text to replace occurs {count} times in {a.path}; include more of the "
                          "surrounding lines so it is unique", ok=False)
    new_text = text.replace(a.old, a.new, 1)
    ctx.ws.write_text(a.path, new_text)
    line = text[: text.index(a.old)].count("\n") + 1
    return ToolResult(f"edited {a.path} at line {line} ({max(1, len(a.old.splitlines()))} line(s) replaced by "
                      f"{len(a.new.splitlines())})", meta={"path": a.path, "line": line})


def _closest_line(text: str, old: str) -> str | None:
    import difflib

    first = old.strip().splitlines()[0] if old.strip() else ""
    match = difflib.get_close_matches(first, [ln.strip() for ln in text.splitlines()], n=1, cutoff=0.6)
    return match[0] if match else None


@handler("scaffold")
def scaffold(a: Scaffold, ctx: ToolContext) -> ToolResult:
    if a.recipe not in registry():
        return ToolResult(f"error: no recipe {a.recipe!r}; the recipes are {sorted(registry())}", ok=False,
                          malformed=True)
    current = {}
    for rel in ("reproduce.sh", "README.md"):
        try:
            current[rel] = ctx.ws.read_text(rel)
        except WorkspaceError:
            pass
    from agent.recipes import get_recipe

    script = get_recipe(a.recipe).script(ctx.plan)
    if script in ctx.ws.manifest or _exists(ctx, script):
        current[script] = "(exists)"
    try:
        files = scaffold_files(ctx.plan, a.experiment, a.recipe, current)
    except KeyError as exc:
        return ToolResult(f"error: {exc.args[0]}", ok=False, malformed=True)
    for rel, content in files.items():
        ctx.ws.write_text(rel, content)
    scaffolded = dict(ctx.loop.get("scaffolded") or {})
    for rel, content in files.items():  # the version the scaffold wrote: later changes are edits
        recipes = sorted(set((scaffolded.get(rel) or {}).get("recipes", [])) | {a.recipe})
        scaffolded[rel] = {"recipes": recipes, "step": ctx.step, "sha256": hashlib.sha256(content.encode()).hexdigest()}
    done = sorted(set(ctx.loop.get("scaffolded_experiments") or []) | {a.experiment})
    return ToolResult(f"scaffolded experiment {a.experiment!r} from recipe {a.recipe!r}: wrote {', '.join(files)}. "
                      f"reproduce.sh now runs it into results/{a.experiment}/. Check with "
                      f"start_job(name=\"smoke\", command=\"REPRO_SMOKE=1 bash reproduce.sh\").",
                      meta={"files": sorted(files), "recipe": a.recipe, "experiment": a.experiment},
                      updates={"scaffolded": scaffolded, "scaffolded_experiments": done})


def _exists(ctx: ToolContext, rel: str) -> bool:
    try:
        ctx.ws.read_text(rel, max_bytes=8 << 20)
        return True
    except WorkspaceError:
        return False
