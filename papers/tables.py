"""Word-position table reconstruction.

``page.find_tables()`` is both slow (~1 s/page) and, on several real papers, scrambles
decimals (``913\\n.`` for 91.3). Instead we locate tables from their ``Table N`` caption,
collect the word rows next to it, and rebuild the grid from word x-positions:

* rows   = words clustered by vertical centre;
* cells  = words merged into phrases when the gap is a normal space;
* columns = x-intervals that no (or almost no) phrase crosses; a phrase covering several
  columns (a spanning header) is repeated across them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .layout import PageLayout, Word

CAPTION_RE = re.compile(r"^(Table|TABLE)\s+([A-Z]?\d+|[IVX]+)\b\s*([:.|\-\u2014\u2013]?)\s*")
OTHER_CAPTION_RE = re.compile(r"^(Figure|Fig\.|FIGURE|Table|TABLE|Algorithm)\s+[A-Z]?\d+\s*[:.]")
NUM = r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)"
_MARKS = "*†‡§¶\u2217\u2020\u2021#^"
NUMERIC_CELL_RE = re.compile(
    rf"^[~≈<>≤≥]?\s*\(?{NUM}\)?\s*[%KMBkmb×x]?(?:\s*(?:±|\+/-|/|\()\s*{NUM}\s*%?\)?)*[{re.escape(_MARKS)}]*$"
)
STRICT_NUMERIC_RE = re.compile(
    rf"^[~≈<>≤≥]?\s*\(?{NUM}\)?\s*%?(?:\s*(?:±|\+/-|/|\()\s*{NUM}\s*%?\)?)*[{re.escape(_MARKS)}]*$"
)
PLACEHOLDER_RE = re.compile(r"^[-/–—−]+$|^n/?a$", re.I)
FIRST_NUM_RE = re.compile(NUM)


@dataclass
class Caption:
    id: str
    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def repair_number_text(s: str) -> str:
    """Undo extraction damage inside numbers: ``34 .60±3 .69`` -> ``34.60±3.69``."""
    s = re.sub(r"(?<=\d)\s*\n\s*(?=[.,]\d)", "", s)
    s = re.sub(r"(?<=\d)\s+(?=\.\d)", "", s)
    s = re.sub(r"(?<=\d)\.\s+(?=\d)", ".", s) if re.fullmatch(r"[\d.\s±%]+", s) else s
    s = re.sub(r"(?<=\d)\s*±\s*(?=[\d.])", "±", s)
    s = re.sub(r"(?<=\d)\s+%", "%", s)
    return s


def is_numeric(cell: str) -> bool:
    c = cell.strip()
    if not c or not any(ch.isdigit() for ch in c):
        return False
    return bool(NUMERIC_CELL_RE.match(c.replace(" ", "")))


def first_number(cell: str) -> float | None:
    m = FIRST_NUM_RE.search(cell.replace(" ", ""))
    if not m:
        return None
    t = m.group(0)
    if "," in t and "." not in t and re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+", t):
        t = t.replace(",", "")
    elif "," in t:
        t = t.replace(",", "") if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+\.\d+", t) else t.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        return None


def find_captions(pl: PageLayout) -> list[Caption]:
    caps: list[Caption] = []
    for b in pl.blocks:
        first = b.lines[0]
        m = CAPTION_RE.match(first.text)
        if not m:
            continue
        punct = m.group(3)
        rest = first.text[m.end():]
        # "Table 2 shows ..." in prose is not a caption
        if not punct and not first.bold and rest[:1].islower():
            continue
        text = " ".join(l.text for l in b.lines)
        text = re.sub(r"(\w)- (\w)", r"\1\2", text)
        caps.append(Caption(f"Table {m.group(2)}", text, b.x0, b.y0, b.x1, b.y1))
    return caps


def _rows(words: list[Word]) -> list[list[Word]]:
    rows: list[list[Word]] = []
    for w in sorted(words, key=lambda w: (w.cy, w.x0)):
        if rows:
            r = rows[-1]
            ry0 = min(x.y0 for x in r)
            ry1 = max(x.y1 for x in r)
            h = min(ry1 - ry0, w.y1 - w.y0)
            ov = min(ry1, w.y1) - max(ry0, w.y0)
            if ov > 0.5 * h:
                r.append(w)
                continue
        rows.append([w])
    for r in rows:
        r.sort(key=lambda w: w.x0)
    return rows


def _phrases(row: list[Word]) -> list[Word]:
    """Merge words of one row into cells."""
    out: list[Word] = []
    for w in row:
        if out:
            p = out[-1]
            h = max(1.0, min(p.y1 - p.y0, w.y1 - w.y0))
            gap = w.x0 - p.x1
            if w.x0 < p.x1 - 0.5 and w.x1 <= p.x1 + 0.5 and len(w.text) <= 2:
                # glyph drawn out of order inside another word (e.g. a decimal point)
                n = len(p.text)
                pos = round((w.cx - p.x0) / max(0.1, (p.x1 - p.x0)) * n)
                p.text = p.text[:pos] + w.text + p.text[pos:]
                continue
            numeric_glue = (
                re.match(r"^[.,±%)\]]", w.text) or re.search(r"[±(\[]$", p.text)
            ) and gap < 0.6 * h
            if numeric_glue:
                out[-1] = Word(p.x0, min(p.y0, w.y0), max(p.x1, w.x1), max(p.y1, w.y1), p.text + w.text, p.size)
                continue
            last = p.text.split(" ")[-1]
            if is_numeric(w.text) and is_numeric(last) and gap > 0.15 * h:
                pass  # two numbers side by side are two cells
            elif gap < 0.42 * h:
                out[-1] = Word(p.x0, min(p.y0, w.y0), max(p.x1, w.x1), max(p.y1, w.y1), p.text + " " + w.text, p.size)
                continue
        out.append(Word(w.x0, w.y0, w.x1, w.y1, w.text, w.size))
    for p in out:
        p.text = repair_number_text(p.text)
    return out


def _is_prose(row: list[Word], width: float) -> bool:
    nums = sum(1 for w in row if is_numeric(w.text))
    if nums > len(row) / 3:
        return False
    ph = _phrases(row)
    # a long run of ordinary words in one cell: running text, not a table row
    for p in ph:
        alpha = [t for t in p.text.split() if re.fullmatch(r"[A-Za-z][a-z\-]+[,.;:]?", t)]
        if len(alpha) >= 7:
            return True
    if len(row) < 6:
        return False
    span = row[-1].x1 - row[0].x0
    if span < 0.6 * width:
        return False
    if len(ph) <= 2:
        return True
    gaps = [b.x0 - a.x1 for a, b in zip(row, row[1:])]
    mean = sum(gaps) / len(gaps)
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    return mean > 0 and var ** 0.5 < 0.35 * mean  # evenly spaced (justified) words


def _row_h(row: list[Word]) -> float:
    return max(w.y1 for w in row) - min(w.y0 for w in row)


def _collect(rows: list[list[Word]], start_y: float, up: bool, width: float, other_caps: list[Caption]) -> list[list[Word]]:
    if up:
        cand = [r for r in rows if max(w.y1 for w in r) <= start_y + 1]
        cand.sort(key=lambda r: -min(w.y0 for w in r))
    else:
        cand = [r for r in rows if min(w.y0 for w in r) >= start_y - 1]
        cand.sort(key=lambda r: min(w.y0 for w in r))
    got: list[list[Word]] = []
    edge = start_y
    hs = sorted(_row_h(r) for r in rows) or [10.0]
    med_h = hs[len(hs) // 2]
    for r in cand:
        y0, y1 = min(w.y0 for w in r), max(w.y1 for w in r)
        gap = (edge - y1) if up else (y0 - edge)
        limit = max(2.6 * med_h, 14.0) if got else max(3.5 * med_h, 24.0)
        if gap > limit:
            break
        text = " ".join(w.text for w in r)
        if OTHER_CAPTION_RE.match(text):
            break
        if any(c.y0 - 1 <= (y0 + y1) / 2 <= c.y1 + 1 for c in other_caps):
            break
        if _is_prose(r, width):
            break
        got.append(r)
        edge = y0 if up else y1
    # a paragraph's last line ("former.") next to the table is not part of it
    while got:
        far = got[-1]
        txt = " ".join(w.text for w in far)
        if len(_phrases(far)) == 1 and txt[:1].islower() and txt.endswith((".", ",", ":")):
            got.pop()
        else:
            break
    if up:
        got.reverse()
    return got


def _grid(rows: list[list[Word]]) -> list[list[str]]:
    prow = [_phrases(r) for r in rows]
    prow = [p for p in prow if p]
    if not prow:
        return []
    xs0 = min(p.x0 for r in prow for p in r)
    xs1 = max(p.x1 for r in prow for p in r)
    n = int(xs1 - xs0) + 2
    # a phrase overlapping two or more cells of another row is a spanning cell: it does
    # not define columns (it is repeated across the columns it covers afterwards)
    def spanning(p: Word, ri: int) -> bool:
        for rj, other in enumerate(prow):
            if rj == ri:
                continue
            if sum(1 for q in other if min(p.x1, q.x1) - max(p.x0, q.x0) > 1.0) >= 2:
                return True
        return False

    maxc = max(len(r) for r in prow)
    full = [ri for ri, r in enumerate(prow) if len(r) >= max(2, math.ceil(0.6 * maxc))] or list(range(len(prow)))
    basis = [[p for p in prow[ri] if not spanning(p, ri)] for ri in full]
    cover = [0] * n
    for r in basis:
        for p in r:
            for i in range(int(p.x0 - xs0), min(n, int(p.x1 - xs0) + 1)):
                cover[i] += 1
    thr = int(0.05 * len(basis))
    cols: list[tuple[float, float]] = []
    i = 0
    while i < n:
        if cover[i] > thr:
            j = i
            while j < n and cover[j] > thr:
                j += 1
            cols.append((xs0 + i, xs0 + j))
            i = j
        else:
            i += 1
    if not cols:
        cols = [(xs0, xs1)]
    grid: list[list[str]] = []
    for r in prow:
        cells = [""] * len(cols)
        for p in r:
            hit = []
            for ci, (c0, c1) in enumerate(cols):
                ov = min(p.x1, c1) - max(p.x0, c0)
                if ov > 0.25 * min(p.x1 - p.x0, c1 - c0) or (ov > 0 and c1 - c0 < 3):
                    hit.append(ci)
            if not hit:  # phrase in a gap: nearest column
                hit = [min(range(len(cols)), key=lambda ci: abs((cols[ci][0] + cols[ci][1]) / 2 - p.cx))]
            for ci in hit:
                cells[ci] = (cells[ci] + " " + p.text).strip() if cells[ci] else p.text
        grid.append(cells)
    # drop empty columns
    keep = [c for c in range(len(cols)) if any(g[c] for g in grid)]
    return [[g[c] for c in keep] for g in grid]


def _strict(c: str) -> bool:
    c = c.strip().replace(" ", "")
    return bool(c) and any(ch.isdigit() for ch in c) and bool(STRICT_NUMERIC_RE.match(c))


def header_row_count(grid: list[list[str]]) -> int:
    for i, row in enumerate(grid):
        vals = [c for c in row[1:] if c and not PLACEHOLDER_RE.match(c.strip())]
        if vals and sum(_strict(c) for c in vals) >= max(1, len(vals) / 2) and not _looks_like_header_numbers(row):
            return i
    return 1 if grid else 0


def _looks_like_header_numbers(row: list[str]) -> bool:
    # e.g. a row of k values "1 2 4 8 16" with an empty first cell is still a header
    vals = [c for c in row if c]
    return bool(vals) and not row[0] and all(re.fullmatch(r"\d+", c) for c in vals) and len(vals) > 2


@dataclass
class RawTable:
    id: str
    page: int  # 1-based
    caption: str | None
    header_rows: int
    rows: list[list[str]]
    bbox: tuple[float, float, float, float]


def _score(rs: list[list[Word]]) -> float:
    if len(rs) < 2:
        return 0.0
    return sum(1 for r in rs if len(_phrases(r)) >= 2) + 0.5 * sum(
        1 for r in rs for w in r if is_numeric(w.text)) / max(1, len(rs))


def caption_candidates(pl: PageLayout) -> list[tuple[Caption, tuple[float, float], list, list]]:
    """For each ``Table N`` caption: the word rows above and below it that look tabular."""
    caps = find_captions(pl)
    if not caps:
        return []
    W = pl.width
    mid = W / 2
    tol = 0.03 * W
    all_caps = caps + [
        Caption("", "", b.x0, b.y0, b.x1, b.y1) for b in pl.blocks if OTHER_CAPTION_RE.match(b.lines[0].text)
        and not CAPTION_RE.match(b.lines[0].text)
    ]
    out = []
    for cap in caps:
        cw = cap.x1 - cap.x0
        beside = any(
            o is not cap and min(o.y1, cap.y1) - max(o.y0, cap.y0) > -20
            and ((o.x0 >= mid - tol and cap.x1 <= mid + tol) or (o.x1 <= mid + tol and cap.x0 >= mid - tol))
            for o in all_caps
        )
        split = pl.two_column or beside
        if split and cw < 0.55 * W and cap.x1 <= mid + tol:
            xr = (0.0, mid + 0.01 * W)
        elif split and cw < 0.55 * W and cap.x0 >= mid - tol:
            xr = (mid - 0.01 * W, W)
        else:
            xr = (0.0, W)
        words = [
            w for w in pl.words
            if xr[0] - 0.5 <= w.x0 and w.x1 <= xr[1] + 0.5
            and not (cap.x0 - 1 <= w.cx <= cap.x1 + 1 and cap.y0 - 1 <= w.cy <= cap.y1 + 1)
        ]
        rows = _rows(words)
        others = [c for c in all_caps if c is not cap]
        width = xr[1] - xr[0]
        out.append((cap, xr, _collect(rows, cap.y0, True, width, others), _collect(rows, cap.y1, False, width, others)))
    return out


def caption_vote(cands) -> int:
    """+1 per caption that clearly sits below its table, -1 per caption clearly above."""
    v = 0
    for _cap, _xr, up, down in cands:
        su, sd = _score(up), _score(down)
        if su >= 2 and sd == 0:
            v += 1
        elif sd >= 2 and su == 0:
            v -= 1
    return v


def extract_tables(pl: PageLayout, cands=None, prefer_up: bool | None = None) -> list[RawTable]:
    if cands is None:
        cands = caption_candidates(pl)
    out: list[RawTable] = []
    used: set[int] = set()
    for cap, _xr, up, down in cands:
        up = [r for r in up if not any(id(w) in used for w in r)]
        down = [r for r in down if not any(id(w) in used for w in r)]
        su, sd = _score(up), _score(down)
        if su > 0 and sd > 0 and prefer_up is not None:
            chosen = up if prefer_up else down
        else:
            chosen = up if su >= sd and up else down
        if len(chosen) < 2:
            continue
        for r in chosen:
            for w in r:
                used.add(id(w))
        grid = _grid(chosen)
        if not grid or len(grid[0]) < 2:
            continue
        allw = [w for r in chosen for w in r]
        bbox = (min(w.x0 for w in allw), min(w.y0 for w in allw), max(w.x1 for w in allw), max(w.y1 for w in allw))
        out.append(RawTable(cap.id, pl.index + 1, cap.text, header_row_count(grid), grid, bbox))
    return out
