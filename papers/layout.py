"""Page layout: visible lines/words, hidden-text detection, reading order.

Only this package imports pymupdf. Everything here works on plain tuples so the
table and section logic stays testable without PDFs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymupdf

LIGATURES = str.maketrans({
    "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
    "\ufb05": "st", "\ufb06": "st", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    "\u2212": "-",  # unicode minus -> ascii hyphen-minus (numbers parse)
    "\u2010": "-", "\u2011": "-",
})

TEXT_FLAGS = (
    pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
)

MIN_VISIBLE_SIZE = 1.0  # points; smaller text is treated as hidden
CAPTION_START_RE = re.compile(r"^(Table|TABLE|Figure|FIGURE|Fig\.)\s+[A-Z]?\d+\s*[:.|]")


def clean(s: str) -> str:
    return s.translate(LIGATURES)


class _Centre:
    """Centre of a box with x0/y0/x1/y1 (lines and words)."""

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass
class Line(_Centre):
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    bold: bool
    block: int
    page: int  # 0-based page index
    nspans: int = 1


@dataclass
class Word(_Centre):
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    size: float = 0.0


@dataclass
class Block:
    lines: list[Line]
    x0: float
    y0: float
    x1: float
    y1: float
    index: int  # order in the content stream


@dataclass
class PageLayout:
    index: int  # 0-based
    width: float
    height: float
    blocks: list[Block]  # in reading order
    words: list[Word]  # visible horizontal words
    hidden: list[str] = field(default_factory=list)  # hidden snippets found
    two_column: bool = False
    columns_reversed: bool = False
    stream_out_of_order: bool = False
    has_images: bool = False
    # page furniture (running headers/footers, page numbers): boxes set by the caller, which
    # sees every page; table reconstruction ignores the words inside them
    furniture: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def lines(self) -> list[Line]:
        return [ln for b in self.blocks for ln in b.lines]

    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


def _hidden_reason(span: dict, ocr: bool = False) -> str | None:
    # An OCR text layer is invisible by construction (drawn under the scanned image): not hidden.
    if not ocr:
        if span.get("alpha", 255) == 0:
            return "invisible"
        cf = span.get("char_flags")
        # MuPDF sets FILLED (16) / STROKED (32) per char; neither = render mode 3 (invisible)
        if cf is not None and not (cf & (16 | 32)):
            return "invisible"
    if span.get("size", 10) < MIN_VISIBLE_SIZE:
        return "tiny"
    color = span.get("color", 0) or 0
    r, g, b = (color >> 16) & 255, (color >> 8) & 255, color & 255
    if min(r, g, b) >= 0xF0:
        return "white"
    return None


def _is_bold(span: dict) -> bool:
    if span.get("flags", 0) & 16:
        return True
    font = span.get("font", "").lower()
    return any(k in font for k in ("bold", "-bd", "black", "heavy", "semibold", "cmbx"))


def extract_page(page: "pymupdf.Page", textpage=None, ocr: bool = False) -> PageLayout:
    tp = textpage or page.get_textpage(flags=TEXT_FLAGS)
    d = tp.extractDICT()
    raw_words = tp.extractWORDS()
    W, H = page.rect.width, page.rect.height
    blocks: list[Block] = []
    hidden: list[str] = []
    hidden_boxes: list[tuple[float, float, float, float]] = []
    has_images = False
    vertical_boxes: list[tuple[float, float, float, float]] = []
    for bi, b in enumerate(d["blocks"]):
        if b.get("type", 0) != 0:
            has_images = True
            continue
        lines: list[Line] = []
        for ln in b["lines"]:
            dx, dy = ln.get("dir", (1, 0))
            horizontal = abs(dy) < 0.1 and dx > 0
            if not horizontal:
                vertical_boxes.append(tuple(ln["bbox"]))
            vis = []
            for s in ln["spans"]:
                reason = _hidden_reason(s, ocr)
                if reason:
                    if s["text"].strip():
                        hidden.append(f"{reason}: {clean(s['text']).strip()[:80]}")
                        hidden_boxes.append(tuple(s["bbox"]))
                    continue
                vis.append(s)
            if not horizontal or not vis:
                continue
            text = clean("".join(s["text"] for s in vis))
            if not text.strip():
                continue
            x0 = min(s["bbox"][0] for s in vis if s["text"].strip()) if any(s["text"].strip() for s in vis) else vis[0]["bbox"][0]
            lines.append(Line(
                text=re.sub(r"\s+", " ", text).strip(),
                x0=x0, y0=min(s["bbox"][1] for s in vis),
                x1=max(s["bbox"][2] for s in vis), y1=max(s["bbox"][3] for s in vis),
                size=max(s["size"] for s in vis if s["text"].strip()) if any(s["text"].strip() for s in vis) else vis[0]["size"],
                bold=all(_is_bold(s) for s in vis if s["text"].strip()),
                block=bi, page=page.number, nspans=len(vis),
            ))
        lines = _merge_same_row(lines)
        if lines:
            blocks.append(Block(lines, min(l.x0 for l in lines), min(l.y0 for l in lines),
                                max(l.x1 for l in lines), max(l.y1 for l in lines), bi))
    if hidden_boxes and any(h.startswith("white") for h in hidden):
        hidden, hidden_boxes = _drop_white_on_fill(page, hidden, hidden_boxes)
    words: list[Word] = []
    for w in raw_words:
        x0, y0, x1, y1, t = w[:5]
        if hidden_boxes:
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            if any(hb[0] - 0.5 <= cx <= hb[2] + 0.5 and hb[1] - 0.5 <= cy <= hb[3] + 0.5 for hb in hidden_boxes):
                continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if any(vb[0] - 0.5 <= cx <= vb[2] + 0.5 and vb[1] - 0.5 <= cy <= vb[3] + 0.5 for vb in vertical_boxes):
            continue  # vertical text (arXiv stamp etc.), known from its line direction, not its shape:
            # a short horizontal word like "(r" or "8)" is taller than wide too
        words.append(Word(x0, y0, x1, y1, clean(t), y1 - y0))
    layout = PageLayout(page.number, W, H, blocks, words, hidden, has_images=has_images)
    _reading_order(layout)
    return layout


def _merge_same_row(lines: list[Line]) -> list[Line]:
    """Join lines of a block that sit on the same baseline ("1" + "Introduction")."""
    out: list[Line] = []
    for ln in lines:
        if out:
            p = out[-1]
            h = min(p.y1 - p.y0, ln.y1 - ln.y0)
            # a caption set beside a table row starts a line of its own, never a row's last cell
            beside_caption = ln.x0 - p.x1 > h and CAPTION_START_RE.match(ln.text)
            if min(p.y1, ln.y1) - max(p.y0, ln.y0) > 0.5 * h and ln.x0 >= p.x1 - 1 and ln.x0 - p.x1 < 60 \
                    and not beside_caption:
                out[-1] = Line(p.text + " " + ln.text, p.x0, min(p.y0, ln.y0), ln.x1, max(p.y1, ln.y1),
                               max(p.size, ln.size), p.bold and ln.bold, p.block, p.page, p.nspans + ln.nspans)
                continue
        out.append(ln)
    return out


def _drop_white_on_fill(page, hidden, boxes):
    """White text drawn on a coloured shape (figure labels) is visible: keep it."""
    try:
        fills = [
            pymupdf.Rect(d["rect"]) for d in page.get_drawings()
            if d.get("fill") is not None and min(d["fill"][:3]) < 0.94 and d["rect"].width > 2 and d["rect"].height > 2
        ]
        imgs = [pymupdf.Rect(i["bbox"]) for i in page.get_image_info()]
    except Exception:  # noqa: BLE001
        return hidden, boxes
    keep_h, keep_b = [], []
    for h, b in zip(hidden, boxes):
        r = pymupdf.Rect(b)
        if h.startswith("white") and any(f.intersects(r) for f in fills + imgs):
            continue
        keep_h.append(h)
        keep_b.append(b)
    return keep_h, keep_b


def _reading_order(pl: PageLayout) -> None:
    W = pl.width
    mid = W / 2
    tol = 0.03 * W
    left, right, full = [], [], []
    for b in pl.blocks:
        if b.x1 <= mid + tol and (b.x1 - b.x0) < 0.55 * W:
            left.append(b)
        elif b.x0 >= mid - tol and (b.x1 - b.x0) < 0.55 * W:
            right.append(b)
        else:
            full.append(b)
    chars = lambda bs: sum(len(l.text) for b in bs for l in b.lines)  # noqa: E731
    two_col = chars(left) > 300 and chars(right) > 300
    stream = sorted(pl.blocks, key=lambda b: b.index)
    if not two_col:
        ordered = sorted(pl.blocks, key=lambda b: (round(b.y0 / 3), b.x0))
    else:
        pl.two_column = True
        # bands separated by full-width blocks
        fulls = sorted(full, key=lambda b: b.y0)
        ordered = []
        cols = sorted(left + right, key=lambda b: b.y0)
        cuts = [f.y0 for f in fulls] + [float("inf")]
        prev = float("-inf")
        fi = 0
        for cut in cuts:
            band = [b for b in cols if prev <= (b.y0 + b.y1) / 2 < cut]
            ordered += sorted([b for b in band if b in left], key=lambda b: b.y0)
            ordered += sorted([b for b in band if b in right], key=lambda b: b.y0)
            if fi < len(fulls):
                ordered.append(fulls[fi])
                prev = fulls[fi].y1 - 0.1
                fi += 1
        # reversed columns: the stream gives right-column text before left-column text
        li = [b.index for b in left if chars([b]) > 40]
        ri = [b.index for b in right if chars([b]) > 40]
        if li and ri and sorted(ri)[len(ri) // 2] < sorted(li)[len(li) // 2]:
            pl.columns_reversed = True
    # content stream starts far down the page (e.g. annotated files: intro before title)
    big = [b for b in stream if chars([b]) > 40]
    if big and ordered:
        first_visual = [b for b in ordered if chars([b]) > 40][0]
        if big[0] is not first_visual and big[0].y0 > 0.3 * pl.height and first_visual.y0 < 0.3 * pl.height:
            pl.stream_out_of_order = True
    pl.blocks = ordered
