"""Look-ups in the structured paper, each answer with its page (and table) for provenance."""
from __future__ import annotations

import re

from agent.tools import ToolContext, ToolResult, handler
from agent.tools.specs import PaperSearch, PaperSection, PaperTable

MAX_CHARS = 6000


@handler("paper_section")
def paper_section(a: PaperSection, ctx: ToolContext) -> ToolResult:
    want = a.name.strip().lower()
    sections = ctx.paper.sections
    hit = next((s for s in sections if s.title.lower() == want), None) or \
        next((s for s in sections if want in s.title.lower()), None)
    if hit is None:
        titles = "; ".join(f"{s.title} (p. {s.page})" for s in sections[:40])
        return ToolResult(f"no section matches {a.name!r}. The sections are: {titles}", ok=False)
    text = hit.text if len(hit.text) <= MAX_CHARS else hit.text[:MAX_CHARS] + \
        f"\n[… {len(hit.text) - MAX_CHARS} more characters; use paper_search for a detail]"
    return ToolResult(f"## {hit.title} (page {hit.page})\n{text}")


@handler("paper_table")
def paper_table(a: PaperTable, ctx: ToolContext) -> ToolResult:
    key = re.sub(r"\s+", " ", a.id.strip().lower())
    if key.isdigit():
        key = f"table {key}"
    t = next((t for t in ctx.paper.tables if t.id.lower() == key), None)
    if t is None:
        ids = ", ".join(f"{t.id} (p. {t.page})" for t in ctx.paper.tables) or "none"
        return ToolResult(f"no table {a.id!r}; the paper's tables are: {ids}", ok=False)
    lines = [f"{t.id} (page {t.page})" + (f": {t.caption}" if t.caption else "")]
    lines += [" | ".join(row) for row in t.rows[:60]]
    if len(t.rows) > 60:
        lines.append(f"[… {len(t.rows) - 60} more rows]")
    return ToolResult("\n".join(lines)[:MAX_CHARS])


@handler("paper_search")
def paper_search(a: PaperSearch, ctx: ToolContext) -> ToolResult:
    needle = a.text.lower()
    hits: list[str] = []
    for s in ctx.paper.sections:
        for sentence in re.split(r"(?<=[.!?])\s+", s.text):
            if needle in sentence.lower():
                hits.append(f"p. {s.page} ({s.title[:40]}): {sentence.strip()[:400]}")
                if len(hits) >= 20:
                    break
    for t in ctx.paper.tables:
        if needle in (t.caption or "").lower() or any(needle in c.lower() for row in t.rows for c in row):
            hits.append(f"p. {t.page}: {t.id}" + (f" — {t.caption[:200]}" if t.caption else "") + " (paper_table shows it)")
    if not hits:
        return ToolResult(f"{a.text!r} does not occur in the paper", ok=False)
    return ToolResult("\n".join(hits[:25]))
