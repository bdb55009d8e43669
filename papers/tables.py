"""Word-position table reconstruction.

``page.find_tables()`` is both slow (~1 s/page) and, on several real papers, scrambles
decimals (``913\\n.`` for 91.3). Instead we locate tables from their ``Table N`` caption,
collect the word rows next to it, and rebuild the grid from word x-positions:

* rows   = words clustered by vertical centre;
* cells  = words merged into phrases when the gap is a normal space;
* columns = x-intervals that no (or almost no) phrase crosses; a phrase covering several
  columns (a spanning header) is repeated across them, and a group label centred over the
  columns it groups ("GLUE" over "MNLI QNLI SST-2") is spread over all of them.

A caption is matched to the tabular rows nearest it: above, below, or beside it (a side
caption); inside a float wrapped in the text column, the prose running beside the caption bounds
the rows' x-range. A caption left at the bottom of a column or page takes the rows that open
the next column or page (``split_tables``, run once every page's own tables are taken).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .layout import Line, PageLayout, Word

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


def _in_box(o, box, pad: float = 0.5) -> bool:
    """The centre of a word or line lies in ``box`` (x0, y0, x1, y1)."""
    return box[0] - pad <= o.cx <= box[2] + pad and box[1] - pad <= o.cy <= box[3] + pad


def _box(o) -> tuple[float, float, float, float]:
    return (o.x0, o.y0, o.x1, o.y1)


def _line_words(pl: PageLayout, ln: Line) -> list[Word]:
    return sorted((w for w in pl.words if _in_box(w, _box(ln), 1.0)), key=lambda w: w.x0)


def _tabular_line(pl: PageLayout, ln: Line) -> bool:
    """A line that reads as a table row: mostly numbers, or cells set apart by wide gaps."""
    toks = ln.text.split()
    nums = sum(1 for t in toks if is_numeric(t))
    if nums >= 2 and nums >= 0.4 * len(toks):
        return True
    ws = _line_words(pl, ln)
    h = max(1.0, ln.y1 - ln.y0)
    return any(b.x0 - a.x1 > 1.5 * h for a, b in zip(ws, ws[1:]))


def _prose_line(pl: PageLayout, ln: Line) -> bool:
    alpha = [t for t in ln.text.split() if re.fullmatch(r"[A-Za-z][a-z\-]+[,.;:]?", t)]
    return len(alpha) >= 4 and len(ln.text) >= 25 and not _tabular_line(pl, ln)


def find_captions(pl: PageLayout) -> list[Caption]:
    """``Table N`` captions: the first line of a block, or a line inside one (a caption set right
    below its table often shares the table's block, after the numbers in the text layer)."""
    caps: list[Caption] = []
    for b in pl.blocks:
        lines = b.lines
        for li, ln in enumerate(lines):
            m = CAPTION_RE.match(ln.text)
            if not m:
                continue
            punct = m.group(3)
            rest = ln.text[m.end():]
            # "Table 2 shows ..." in prose is not a caption
            if not punct and not ln.bold and rest[:1].islower():
                continue
            if li > 0:
                # inside a block: only after a table row, a gap or a change of size, never
                # in the middle of a paragraph ("... as shown in / Table 3. We ...")
                prev = lines[li - 1]
                h = max(1.0, min(prev.y1 - prev.y0, ln.y1 - ln.y0))
                apart = ln.y0 - prev.y1 > 0.5 * h or abs(prev.size - ln.size) > 0.6
                if not (punct or ln.bold) or not (apart or _tabular_line(pl, prev)):
                    continue
            # the caption's own lines: until a gap, a change of size, another caption or a table row
            own = [ln]
            for nx in lines[li + 1:]:
                p = own[-1]
                h = max(1.0, min(p.y1 - p.y0, nx.y1 - nx.y0))
                if (nx.y0 - p.y1 > 0.9 * h or abs(nx.size - ln.size) > 0.6 or OTHER_CAPTION_RE.match(nx.text)
                        or CAPTION_RE.match(nx.text) or _tabular_line(pl, nx)):
                    break
                own.append(nx)
            text = " ".join(l.text for l in own)
            text = re.sub(r"(\w)- (\w)", r"\1\2", text)
            caps.append(Caption(f"Table {m.group(2)}", text, min(l.x0 for l in own), min(l.y0 for l in own),
                                max(l.x1 for l in own), max(l.y1 for l in own)))
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
    h = sorted(w.y1 - w.y0 for w in row)[len(row) // 2]
    # evenly spaced (justified) words; a table's header row is evenly spaced too, but far apart
    return mean > 0 and var ** 0.5 < 0.35 * mean and mean < 0.8 * h


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
        # another caption level with the row (one in the other column does not count)
        rx0, rx1 = min(w.x0 for w in r), max(w.x1 for w in r)
        if any(c.y0 - 1 <= (y0 + y1) / 2 <= c.y1 + 1 and c.x0 < rx1 and c.x1 > rx0 for c in other_caps):
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
    placed: list[list[tuple[Word, list[int]]]] = []
    for r in prow:
        cells = [""] * len(cols)
        placed.append([])
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
            placed[-1].append((p, hit))
        grid.append(cells)
    _spread_groups(grid, cols, placed)
    # drop empty columns
    keep = [c for c in range(len(cols)) if any(g[c] for g in grid)]
    return [[g[c] for c in keep] for g in grid]


def _spread_groups(grid: list[list[str]], cols: list[tuple[float, float]], placed) -> None:
    """Two-level headers: a group label ("GLUE") centred over the columns it groups ("MNLI QNLI
    SST-2") is usually narrower than them, so it only touches one. Spread it over the widest run
    of columns centred under it that no other label of its row holds (label columns excluded)."""
    hdr = header_row_count(grid)
    n = len(cols)
    if hdr < 2 or n < 3:
        return
    body = grid[hdr:]

    def txt(cell: str) -> bool:
        return bool(cell) and not is_numeric(cell) and not PLACEHOLDER_RE.match(cell.strip())

    label_cols = {c for c in range(n) if sum(txt(r[c]) for r in body) > sum(1 for r in body if r[c] and is_numeric(r[c]))}
    label_cols.add(min((c for c in range(n) if any(r[c] for r in grid)), default=0))
    for i in range(hdr - 1):
        row = sorted(placed[i], key=lambda t: t[0].cx)
        below = {c for c in range(n) if any(grid[k][c] for k in range(i + 1, hdr))}
        if not row or max(len(placed[k]) for k in range(i + 1, hdr)) <= len(row):
            continue  # the rows below must name more columns than this one groups
        claimed: set[int] = set()
        for j, (p, hit) in enumerate(row):
            taken = claimed | {c for jj, (_q, h) in enumerate(row) if jj != j for c in h}
            a0, b0 = min(hit), max(hit)
            if a0 in label_cols or any(grid[i + 1][c][:1].islower() for c in hit):
                continue  # a row label's header, or a header wrapped onto the next row ("Total num / params")
            best = (a0, b0)
            a = a0
            while a >= 0 and a not in taken and (a == a0 or a not in label_cols):
                b = b0
                while b < n and b not in taken and (b == b0 or b not in label_cols):
                    x0, x1 = cols[a][0], cols[b][1]
                    if abs((x0 + x1) / 2 - p.cx) <= max(4.0, 0.06 * (x1 - x0)) and b - a > best[1] - best[0]:
                        best = (a, b)
                    b += 1
                a -= 1
            span = range(best[0], best[1] + 1)
            if best != (a0, b0) and len(below.intersection(span)) >= 2:
                for c in span:
                    if c not in hit:
                        grid[i][c] = p.text
                claimed.update(span)


def _strict(c: str) -> bool:
    c = c.strip().replace(" ", "")
    return bool(c) and any(ch.isdigit() for ch in c) and bool(STRICT_NUMERIC_RE.match(c))


def header_row_count(grid: list[list[str]]) -> int:
    h = _first_body_row(grid)
    # a lone label spanning columns right above the body ("GPT-2 Medium"), that recurs in the
    # body ("GPT-2 Large"), names a block of rows, not a column
    while h >= 2 and _section_row(grid[h - 1], 2) and any(_section_row(r, 1) for r in grid[h:]):
        h -= 1
    return h


def _first_body_row(grid: list[list[str]]) -> int:
    for i, row in enumerate(grid):
        vals = [c for c in row[1:] if c and not PLACEHOLDER_RE.match(c.strip())]
        if vals and sum(_strict(c) for c in vals) >= max(1, len(vals) / 2) and not _looks_like_header_numbers(row):
            return i
    return 1 if grid else 0


def _section_row(row: list[str], span: int) -> bool:
    """One label and nothing else in the row, over at least ``span`` columns."""
    vals = [c for c in row if c]
    return len(vals) >= span and len(set(vals)) == 1 and not is_numeric(vals[0])


def _looks_like_header_numbers(row: list[str]) -> bool:
    # e.g. a row of k values "1 2 4 8 16" with an empty first cell is still a header
    vals = [c for c in row if c]
    return bool(vals) and not row[0] and all(re.fullmatch(r"\d+", c) for c in vals) and len(vals) > 2


@dataclass
class RawTable:
    id: str
    page: int  # 1-based: the page of the table's body
    caption: str | None
    header_rows: int
    rows: list[list[str]]
    bbox: tuple[float, float, float, float]
    order: tuple[int, int] = (0, 0)  # (page index, caption index) of the caption: document order


def _score(rs: list[list[Word]]) -> float:
    if len(rs) < 2:
        return 0.0
    return sum(1 for r in rs if len(_phrases(r)) >= 2) + 0.5 * sum(
        1 for r in rs for w in r if is_numeric(w.text)) / max(1, len(rs))


@dataclass
class Candidate:
    """A caption and the word rows that may be its table: above, below and beside it."""
    cap: Caption
    xr: tuple[float, float]  # the x-range the rows were taken from
    up: list
    down: list
    side: list = field(default_factory=list)  # rows beside the caption (a side caption)
    column: tuple[float, float] = (0.0, 0.0)  # the text column the caption sits in
    at_bottom: bool = False  # nothing follows the caption in its column: the body may be in the next one
    order: int = 0
    matched: bool = False


def _all_caps(pl: PageLayout, caps: list[Caption]) -> list[Caption]:
    """Table captions and the boxes of other captions (figures, algorithms) on the page."""
    return caps + [
        Caption("", "", b.x0, b.y0, b.x1, b.y1) for b in pl.blocks if OTHER_CAPTION_RE.match(b.lines[0].text)
        and not CAPTION_RE.match(b.lines[0].text)
    ]


def _page_words(pl: PageLayout) -> list[Word]:
    """The page's words less its furniture (running headers, page numbers)."""
    if not pl.furniture:
        return pl.words
    return [w for w in pl.words if not any(_in_box(w, f) for f in pl.furniture)]


def _in_range(w: Word, xr: tuple[float, float]) -> bool:
    return xr[0] - 0.5 <= w.x0 and w.x1 <= xr[1] + 0.5


def _float_range(pl: PageLayout, cap: Caption, xr: tuple[float, float]) -> tuple[float, float]:
    """A float wrapped in the text column: the prose running beside its caption bounds it."""
    lo, hi = xr
    for ln in pl.lines:
        if _in_box(ln, _box(cap), 1.0) or ln.x0 < xr[0] - 1 or ln.x1 > xr[1] + 1:
            continue
        if min(ln.y1, cap.y1) - max(ln.y0, cap.y0) <= 0.3 * max(1.0, ln.y1 - ln.y0):
            continue
        if ln.x1 <= cap.x0 + 2 and _prose_line(pl, ln):
            lo = max(lo, ln.x1 + 1)
        elif ln.x0 >= cap.x1 - 2 and _prose_line(pl, ln):
            hi = min(hi, ln.x0 - 1)
    return (lo, hi) if hi - lo > 40 else xr


def _beside(words: list[Word], cap: Caption, xr: tuple[float, float], others: list[Caption]) -> list:
    """Rows to the left or right of a caption, from the caption's height up and down."""
    best: list = []
    for sx in ((xr[0], cap.x0 - 1), (cap.x1 + 1, xr[1])):
        width = sx[1] - sx[0]
        if width < 40:
            continue
        ws = [w for w in words if _in_range(w, sx) and not any(_in_box(w, _box(c), 1.0) for c in others)]
        rows = _rows(ws)
        mid = [r for r in rows if cap.y0 - 2 <= (min(w.y0 for w in r) + max(w.y1 for w in r)) / 2 <= cap.y1 + 2]
        if not mid or any(_is_prose(r, width) for r in mid):
            continue
        rest = [r for r in rows if not any(r is m for m in mid)]
        top, bot = min(w.y0 for r in mid for w in r), max(w.y1 for r in mid for w in r)
        got = _collect(rest, top, True, width, others) + mid + _collect(rest, bot, False, width, others)
        if _score(got) > _score(best):
            best = got
    return best


def caption_candidates(pl: PageLayout) -> list[Candidate]:
    """For each ``Table N`` caption: the word rows above, below and beside it that look tabular."""
    caps = find_captions(pl)
    if not caps:
        return []
    W = pl.width
    mid = W / 2
    tol = 0.03 * W
    all_caps = _all_caps(pl, caps)
    base = _page_words(pl)
    out = []
    for k, cap in enumerate(caps):
        cw = cap.x1 - cap.x0
        beside = any(
            o is not cap and min(o.y1, cap.y1) - max(o.y0, cap.y0) > -20
            and ((o.x0 >= mid - tol and cap.x1 <= mid + tol) or (o.x1 <= mid + tol and cap.x0 >= mid - tol))
            for o in all_caps
        )
        split = pl.two_column or beside
        if split and cw < 0.55 * W and cap.x1 <= mid + tol:
            col = (0.0, mid + 0.01 * W)
        elif split and cw < 0.55 * W and cap.x0 >= mid - tol:
            col = (mid - 0.01 * W, W)
        else:
            col = (0.0, W)
        xr = _float_range(pl, cap, col)
        own = _box(cap)
        words = [w for w in base if _in_range(w, xr) and not _in_box(w, own, 1.0)]
        rows = _rows(words)
        others = [c for c in all_caps if c is not cap]
        width = xr[1] - xr[0]
        up = _collect(rows, cap.y0, True, width, others)
        down = _collect(rows, cap.y1, False, width, others)
        side = _beside(base, cap, xr, others)
        at_bottom = cap.y1 > 0.5 * pl.height and not any(
            cap.y1 + 1 < w.cy < 0.92 * pl.height for w in base if _in_range(w, col) and not _in_box(w, own, 1.0))
        out.append(Candidate(cap, xr, up, down, side, col, at_bottom, k))
    return out


def caption_vote(cands: list[Candidate]) -> int:
    """+1 per caption that clearly sits below its table, -1 per caption clearly above."""
    v = 0
    for c in cands:
        su, sd = _score(c.up), _score(c.down)
        if su >= 2 and sd == 0:
            v += 1
        elif sd >= 2 and su == 0:
            v -= 1
    return v


def _ids(rows: list[list[Word]]) -> set[int]:
    return {id(w) for r in rows for w in r}


def _table(cap: Caption, pl: PageLayout, rows: list[list[Word]], used: set[int], order: tuple[int, int]) -> RawTable | None:
    used |= _ids(rows)
    grid = _grid(rows)
    if not grid or len(grid[0]) < 2:
        return None
    allw = [w for r in rows for w in r]
    bbox = (min(w.x0 for w in allw), min(w.y0 for w in allw), max(w.x1 for w in allw), max(w.y1 for w in allw))
    return RawTable(cap.id, pl.index + 1, cap.text, header_row_count(grid), grid, bbox, order)


def extract_tables(pl: PageLayout, cands=None, prefer_up: bool | None = None, used: set[int] | None = None) -> list[RawTable]:
    """The tables of one page. ``used`` (ids of words already in a table) is shared across pages."""
    if cands is None:
        cands = caption_candidates(pl)
    used = set() if used is None else used
    out: list[RawTable] = []
    for c in cands:
        up, down, side = ([r for r in rs if not any(id(w) in used for w in r)] for rs in (c.up, c.down, c.side))
        su, sd = _score(up), _score(down)
        if su > 0 and sd > 0 and prefer_up is not None:
            chosen = up if prefer_up else down
        else:
            chosen = up if su >= sd and up else down
        # a caption beside its body: the rows beside it hold what was found above/below, and more
        if _score(side) >= 2 and (len(chosen) < 2 or _ids(chosen) < _ids(side)):
            chosen = side
        if len(chosen) < 2:
            continue
        rt = _table(c.cap, pl, chosen, used, (pl.index, c.order))
        if rt:
            out.append(rt)
            c.matched = True
    return out


def _top_rows(pl: PageLayout, xr: tuple[float, float], used: set[int]) -> list:
    """The tabular rows that open a column (x-range ``xr``) of a page, down to the first non-table row."""
    W = pl.width
    mid, tol = W / 2, 0.03 * W
    # full-width lines are not in a column of a two-column page
    cross = [_box(ln) for ln in pl.lines if pl.two_column and ln.x0 < mid - tol and ln.x1 > mid + tol
             and xr[1] - xr[0] < 0.6 * W]
    ws = [w for w in _page_words(pl) if _in_range(w, xr) and id(w) not in used and not any(_in_box(w, b) for b in cross)]
    rows = _rows(ws)
    if not rows:
        return []
    caps = _all_caps(pl, find_captions(pl))
    rows.sort(key=lambda r: min(w.y0 for w in r))
    # a running header not recognised as one (too few pages to repeat): alone in the top margin
    while len(rows) > 1 and max(w.y1 for w in rows[0]) < 0.08 * pl.height and (
            min(w.y0 for w in rows[1]) - max(w.y1 for w in rows[0]) > 1.5 * _row_h(rows[0])):
        rows = rows[1:]
    start = min(w.y0 for w in rows[0])
    got = _collect(rows, start, False, xr[1] - xr[0], caps)
    if len(got) < 2 or _score(got) < 2:
        return []
    # rows followed by a caption are that caption's (a figure's tick labels, a table captioned below)
    after = [r for r in rows if min(w.y0 for w in r) > max(w.y1 for w in got[-1])]
    if after:
        nxt = after[0]
        gap = min(w.y0 for w in nxt) - max(w.y1 for w in got[-1])
        ncy = (min(w.y0 for w in nxt) + max(w.y1 for w in nxt)) / 2
        if gap < 3.5 * max(_row_h(r) for r in got) and any(c.y0 - 1 <= ncy <= c.y1 + 1 for c in caps):
            return []
    return got


def split_tables(page_cands: list[tuple[PageLayout, list[Candidate]]], layouts: list[PageLayout], used: set[int]) -> list[RawTable]:
    """Captions set at the bottom of a column or page whose body opens the next column or page."""
    after = {pl.index: layouts[i + 1] for i, pl in enumerate(layouts[:-1])}
    out: list[RawTable] = []
    for pl, cands in page_cands:
        W = pl.width
        for c in cands:
            if c.matched or not c.at_bottom:
                continue
            targets = []
            if pl.two_column and c.column[1] <= W / 2 + 0.03 * W:
                targets.append((pl, (W / 2 - 0.01 * W, W)))  # the right column of the same page
            else:
                nxt = after.get(pl.index)
                if nxt is not None:
                    targets.append((nxt, (0.0, nxt.width)))
                    if nxt.two_column:
                        targets.append((nxt, (0.0, nxt.width / 2 + 0.01 * nxt.width)))
            for tgt, xr in targets:
                rows = _top_rows(tgt, xr, used)
                if not rows:
                    continue
                rt = _table(c.cap, tgt, rows, set(), (pl.index, c.order))
                if rt and sum(1 for r in rt.rows[rt.header_rows:] if any(is_numeric(x) for x in r[1:])) >= 2:
                    used |= _ids(rows)
                    out.append(rt)
                    c.matched = True
                    break
    return out
