"""PDF -> :class:`papers.paper.Paper`.

``load_paper`` is the only entry point. It validates the file before handing it to
MuPDF (existence, size, magic bytes), enforces page/size/time caps, strips hidden text,
skips cover sheets, orders two-column text, and extracts tables, results and
hyper-parameters.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pymupdf

from .errors import PaperError
from .layout import Line, PageLayout, TEXT_FLAGS, extract_page
from .paper import Paper, Section, Table
from .results import find_hyperparameters, results_from_tables
from .tables import caption_candidates, caption_vote, extract_tables, split_tables

pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

COVER_PATTERNS = [
    re.compile(r"See discussions, stats, and author profiles", re.I),
    re.compile(r"researchgate\.net/publication", re.I),
    re.compile(r"All content following this page was uploaded by", re.I),
    re.compile(r"^This content downloaded from", re.I | re.M),
]
ABSTRACT_RE = re.compile(r"^\s*(a\s?b\s?s\s?t\s?r\s?a\s?c\s?t|summary)\s*[.:\u2014\u2013-]?\s*(.*)$", re.I)
NUMBERED_HEADING_RE = re.compile(r"^((?:\d{1,2}|[A-H])(?:\.\d{1,2}){0,3})\.?\s+([A-Z][^\n]{1,90})$")
KNOWN_HEADINGS = {
    "introduction", "related work", "background", "method", "methods", "methodology", "approach",
    "experiments", "experimental setup", "experimental results", "results", "discussion",
    "conclusion", "conclusions", "references", "acknowledgments", "acknowledgements",
    "acknowledgment", "acknowledgement", "appendix", "limitations", "broader impact",
    "ethics statement", "future work", "evaluation", "analysis", "summary", "bibliography",
    "conclusions and future work", "materials and methods", "data availability",
    "conflicts of interest", "abbreviations", "keywords", "supplementary material",
}
AFFIL_RE = re.compile(
    r"@|universit|institut|college|school|department|dept\.|laborator|\blab\b|research|inc\.|"
    r"google|facebook|microsoft|openai|deepmind|hugging ?face|corporation|academy|centre|center|"
    r"\bcorp\b|http|www\.|\.com|\.edu|\.org|equal contribution|correspond|jmir|doi|citation|"
    r"\b(usa|uk|china|france|germany|canada|ireland|japan|switzerland)\b|published|conference|"
    r"proceedings|arxiv|preprint|review|submitted|journal|vol\.|pages?\s\d|\bpp\.|\bhall\b|\bdr\b|street|"
    r"\bst\b|road|avenue|united states|anonymous|\b\d{5}\b|blvd|suite|building|floor|campus|\bltd\b|gmbh",
    re.I,
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_file(path: Path, max_bytes: int) -> None:
    if not path.exists():
        raise PaperError("not_found", f"{path} does not exist; check the path and try again.", path=str(path))
    if path.is_dir():
        raise PaperError("not_found", f"{path} is a directory, not a PDF file; pass the path of a .pdf file.", path=str(path))
    size = path.stat().st_size
    if size == 0:
        raise PaperError("empty", f"{path} is empty (0 bytes); re-download the paper.", path=str(path))
    if size > max_bytes:
        raise PaperError(
            "too_large",
            f"{path} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "use a smaller PDF (e.g. the arXiv version) or raise max_bytes.",
            path=str(path),
        )
    with path.open("rb") as f:
        head = f.read(1024)
    if b"%PDF-" not in head:
        low = head.lstrip().lower()
        if low.startswith(b"pk\x03\x04"):
            what = "a ZIP archive"
        elif low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:400]:
            what = "an HTML page (probably a download/login page saved instead of the PDF)"
        elif low.startswith(b"\x89png") or low.startswith(b"\xff\xd8"):
            what = "an image"
        elif not head.strip(b"\x00 \t\r\n"):
            raise PaperError("empty", f"{path} contains no data; re-download the paper.", path=str(path))
        else:
            what = "some other kind of file (it has no %PDF- header)"
        raise PaperError(
            "not_pdf", f"{path} is {what}, not a PDF; download the paper's PDF file and pass that.",
            path=str(path),
        )


def _ends_like_a_pdf(path: Path) -> bool:
    """A complete PDF ends with %%EOF (maybe plus a little whitespace or an appended update)."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 2048))
        return b"%%EOF" in f.read()


def _open(path: Path, password: str | None) -> "pymupdf.Document":
    try:
        doc = pymupdf.open(str(path), filetype="pdf")
    except Exception as e:  # noqa: BLE001 - MuPDF raises various errors for broken files
        raise PaperError(
            "corrupt", f"{path} is damaged and cannot be opened as a PDF ({e}); re-download the paper.",
            path=str(path),
        ) from e
    if doc.needs_pass:
        if password is None:
            doc.close()
            raise PaperError(
                "encrypted",
                f"{path} is encrypted with a user password; pass it with --password "
                "(load_paper(..., password=...)).",
                path=str(path),
            )
        if not doc.authenticate(password):
            doc.close()
            raise PaperError(
                "encrypted", f"{path} is encrypted and the password given is wrong; pass the correct --password.",
                path=str(path),
            )
    if doc.page_count == 0:
        doc.close()
        raise PaperError("corrupt", f"{path} has no readable pages (truncated or damaged); re-download the paper.", path=str(path))
    return doc


def _tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def _is_cover(pl: PageLayout) -> bool:
    txt = pl.text()
    return any(p.search(txt) for p in COVER_PATTERNS)


def _norm_margin(s: str) -> str:
    return re.sub(r"\d+", "#", s.strip().lower())


def _in_margin(pl: PageLayout, ln: Line) -> bool:
    return ln.y1 < 0.08 * pl.height or ln.y0 > 0.92 * pl.height


def _mark_furniture(content: list[PageLayout]) -> None:
    """Running headers/footers (the same digit-normalised text in the top/bottom margin of >= 3
    pages) and page numbers: their boxes go to ``pl.furniture`` so tables never take them in."""
    counts: Counter[str] = Counter()
    for pl in content:
        for ln in pl.lines:
            if _in_margin(pl, ln):
                counts[_norm_margin(ln.text)] += 1
    for pl in content:
        pl.furniture = [
            (ln.x0, ln.y0, ln.x1, ln.y1) for ln in pl.lines
            if _in_margin(pl, ln) and (counts[_norm_margin(ln.text)] >= 3 or re.fullmatch(r"\d{1,3}", ln.text.strip()))
        ]


def _body_size(pls: list[PageLayout]) -> float:
    c: Counter[float] = Counter()
    for pl in pls:
        for ln in pl.lines:
            c[round(ln.size, 1)] += len(ln.text)
    return c.most_common(1)[0][0] if c else 10.0


def _join_lines(lines: list[str]) -> str:
    out = ""
    for t in lines:
        if not out:
            out = t
        elif out.endswith("-") and t[:1].islower() and len(out) > 1 and out[-2].isalpha():
            out = out[:-1] + t
        else:
            out += " " + t
    return out


def _heading(ln: Line, first_in_block: bool, body: float) -> str | None:
    t = ln.text.strip()
    if len(t) > 100 or len(t) < 3:
        return None
    if re.match(r"^(Table|Figure|Fig\.|Algorithm)\s", t, re.I):
        return None
    emph = ln.bold or ln.size > body + 0.6 or (t.isupper() and len(t) > 5)
    if not first_in_block or not emph:
        return None
    m = NUMBERED_HEADING_RE.match(t)
    if m:
        words = m.group(2).split()
        if len(words) <= 14 and not re.search(r"\d+\.\d+\s*$", t) and sum(c.isalpha() for c in t) > 3:
            return t
    if t.lower().strip(" .:") in KNOWN_HEADINGS:
        return t.strip(" .:")
    return None


def load_paper(
    path,
    *,
    password: str | None = None,
    ocr: bool = False,
    max_pages: int = 500,
    max_bytes: int = 200 << 20,
    timeout_s: float = 120.0,
) -> Paper:
    """Parse a paper PDF into a :class:`Paper`. Raises :class:`PaperError` on bad input."""
    t_start = time.monotonic()
    path = Path(path)
    _check_file(path, max_bytes)
    sha = _sha256(path)
    doc = _open(path, password)
    warnings: list[str] = []

    def check_time(stage: str) -> None:
        if time.monotonic() - t_start > timeout_s:
            raise PaperError(
                "timeout",
                f"{path}: ingestion took longer than {timeout_s:.0f} s ({stage}); "
                "the file is unusually heavy — try a smaller/simpler PDF or raise timeout_s.",
                path=str(path),
            )

    try:
        n = doc.page_count
        if n > max_pages:
            raise PaperError(
                "too_large",
                f"{path} has {n} pages, over the limit of {max_pages}; a paper should be far shorter — "
                "pass only the paper (or raise max_pages).",
                path=str(path),
            )
        if doc.is_repaired:
            warnings.append("file was damaged and has been repaired by the PDF reader; some content may be missing")
        if password is None and doc.is_encrypted:
            pass
        layouts: list[PageLayout] = []
        for page in doc:
            check_time(f"page {page.number + 1}")
            try:
                layouts.append(extract_page(page))
            except Exception as e:  # noqa: BLE001
                warnings.append(f"page {page.number + 1}: could not be read ({type(e).__name__}); skipped")
                layouts.append(PageLayout(page.number, page.rect.width, page.rect.height, [], []))
        total_chars = sum(len(ln.text.strip()) for pl in layouts for ln in pl.lines)
        scanned = total_chars < 20 * n and (
            total_chars == 0 or sum(1 for pg in doc if pg.get_images()) >= max(1, n // 2)
        )
        if scanned and (doc.is_repaired or not _ends_like_a_pdf(path)):
            # A cut-off download also has (almost) no text; calling it a scan sends people to OCR.
            raise PaperError(
                "corrupt",
                f"{path} is damaged or truncated: the PDF reader had to repair it"
                + ("" if _ends_like_a_pdf(path) else " and it stops before the PDF's end marker (%%EOF)")
                + f", and only {total_chars} characters of text survive in {n} pages. Re-download the paper.",
                path=str(path),
            )
        if scanned and not ocr:
            raise PaperError(
                "no_text",
                f"{path} has no usable text layer ({total_chars} characters in {n} pages; it looks like a scan). "
                + ("Re-run with --ocr to recognise the text with Tesseract."
                   if _tesseract_available() else
                   "Re-run with --ocr after installing Tesseract (e.g. `apt-get install tesseract-ocr`)."),
                path=str(path),
            )
        if not scanned and total_chars < 20 * n:
            warnings.append(f"very little text ({total_chars} characters in {n} pages)")
        if scanned and ocr:
            if not _tesseract_available():
                raise PaperError(
                    "no_text",
                    f"{path} has no text layer and OCR needs Tesseract, which is not installed; "
                    "install it with `apt-get install tesseract-ocr` (or `brew install tesseract`) and retry.",
                    path=str(path),
                )
            layouts = []
            for page in doc:
                check_time(f"OCR page {page.number + 1}")
                tp = page.get_textpage_ocr(flags=TEXT_FLAGS, dpi=300, full=True)
                layouts.append(extract_page(page, textpage=tp, ocr=True))
            warnings.append("OCR used: the PDF has no text layer; text was recognised with Tesseract and may contain errors")

        # hidden text
        hidden = [(pl.index, h) for pl in layouts for h in pl.hidden]
        if hidden:
            kinds = Counter(h.split(":", 1)[0] for _, h in hidden)
            sample = "; ".join(f"p{i + 1} {h}" for i, h in hidden[:3])
            warnings.append(
                f"hidden text stripped ({len(hidden)} spans: "
                + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + f"), e.g. {sample}"
            )

        # cover pages
        content = list(layouts)
        while content and len(content) > 1 and _is_cover(content[0]):
            warnings.append(f"cover page skipped (page {content[0].index + 1} is a repository cover sheet, e.g. ResearchGate)")
            content = content[1:]

        rev = [pl.index + 1 for pl in content if pl.columns_reversed]
        if rev:
            warnings.append(f"columns reversed in the text stream on pages {_pages(rev)}; reordered by position")
        ooo = [pl.index + 1 for pl in content if pl.stream_out_of_order]
        if ooo:
            warnings.append(f"content stream out of reading order on pages {_pages(ooo)} (e.g. introduction before title); reordered by position")

        # tables (only pages with a "Table N" caption are examined)
        _mark_furniture(content)
        raw_tables = []
        page_cands = []
        for pl in content:
            check_time(f"tables on page {pl.index + 1}")
            if not any(re.match(r"^(Table|TABLE)\s+[A-Z]?\d", ln.text) for ln in pl.lines):
                continue
            page_cands.append((pl, caption_candidates(pl)))
        # document convention: are table captions above or below their tables?
        vote = sum(caption_vote(c) for _, c in page_cands)
        prefer_up = True if vote > 0 else (False if vote < 0 else None)
        used: set[int] = set()  # words already in a table
        for pl, cands in page_cands:
            raw_tables.extend(extract_tables(pl, cands, prefer_up, used))
        # captions left at the bottom of a column or page: the body starts the next column / page
        raw_tables.extend(split_tables(page_cands, content, used))
        raw_tables.sort(key=lambda rt: rt.order)
        # keep the first table of each id (later mentions are usually duplicates/continuations)
        seen: dict[str, int] = {}
        tables: list[Table] = []
        boxes: dict[int, list[tuple[float, float, float, float]]] = {}
        for rt in raw_tables:
            tid = rt.id
            if tid in seen:
                seen[tid] += 1
                tid = f"{rt.id} (cont. {seen[rt.id]})"
            else:
                seen[tid] = 1
            tables.append(Table(id=tid, page=rt.page, caption=rt.caption, header_rows=rt.header_rows, rows=rt.rows))
            boxes.setdefault(rt.page - 1, []).append(rt.bbox)

        title, authors, abstract, front_end = _front_matter(content)
        sections = _sections(content, boxes, front_end)
        check_time("sections")
        results = results_from_tables(tables)
        hps = find_hyperparameters(sections, tables, abstract)
        if not title:
            warnings.append("title not found")
        if not abstract:
            warnings.append("abstract not found")
        meta_title = (doc.metadata or {}).get("title") or ""
        if not title and meta_title:
            title = meta_title
        return Paper(
            source=str(path), sha256=sha, title=title, authors=authors, abstract=abstract, pages=n,
            sections=sections, tables=tables, results=results, hyperparameters=hps, warnings=warnings,
        )
    finally:
        doc.close()


def _pages(nums: list[int]) -> str:
    return ", ".join(str(x) for x in nums[:20]) + (" …" if len(nums) > 20 else "")


def _front_matter(content: list[PageLayout]) -> tuple[str, list[str], str, tuple[int, int]]:
    """Title, authors, abstract and the (page, line index) where the body starts."""
    if not content:
        return "", [], "", (0, 0)
    first = content[0]
    lines = first.lines
    H = first.height
    cands = [
        ln for ln in lines
        if ln.y0 < 0.5 * H and sum(c.isalpha() for c in ln.text) >= 3
        and not re.match(r"^(arXiv|Published|Under review|Proceedings|Preprint)", ln.text, re.I)
    ]
    title = ""
    title_lines: list[Line] = []
    if cands:
        top = max(ln.size for ln in cands)
        big = [ln for ln in cands if ln.size >= top - 0.6]
        big.sort(key=lambda l: l.y0)
        title_lines = [big[0]]
        for ln in big[1:]:
            if ln.y0 - title_lines[-1].y1 < 1.2 * ln.size:
                title_lines.append(ln)
            else:
                break
        tl = [l.text for l in title_lines]
        if sum(c.isupper() for c in "".join(tl)) > 0.6 * sum(c.isalpha() for c in "".join(tl)):
            # small caps come out as "P RE - TRAINING": glue split capitals, and "LAN-" + "GUAGE"
            tl = [re.sub(r"\s*-\s*", "-", re.sub(r"\b([A-Z]) (?=[A-Z]{2,})", r"\1", t)) for t in tl]
            title = ""
            for t in tl:
                title = title[:-1] + t if title.endswith("-") else (title + " " + t).strip()
            title = re.sub(r"\s+", " ", title).strip()
            title = re.sub(r"(\w)- (\w)", r"\1\2", title)
        else:
            title = re.sub(r"\s+", " ", _join_lines(tl)).strip()
    # abstract: heading "Abstract" (or "Abstract. text") in reading order, first two pages
    abstract = ""
    front_end = (0, 0)
    abs_pos = None
    flat = [(pi, li, ln) for pi, pl in enumerate(content[:2]) for li, ln in enumerate(pl.lines)]
    for k, (pi, li, ln) in enumerate(flat):
        m = ABSTRACT_RE.match(ln.text)
        if m and (len(ln.text) < 15 or ln.text[:8].lower().replace(" ", "").startswith("abstract")):
            if m.group(1).lower().startswith("summary") and len(ln.text) > 10:
                continue
            abs_pos = k
            break
    body_size = _body_size(content[:3])
    if abs_pos is not None:
        pi0, li0, ln0 = flat[abs_pos]
        m = ABSTRACT_RE.match(ln0.text)
        parts = [m.group(2)] if m and m.group(2) else []
        end = len(flat)
        for k in range(abs_pos + 1, len(flat)):
            pi, li, ln = flat[k]
            first_in_block = li == 0 or content[pi].lines[li - 1].block != ln.block
            t = ln.text.strip()
            if _heading(ln, first_in_block, body_size) or re.match(
                r"^(keywords?|index terms|key words|ccs concepts)\b", t, re.I
            ) or re.match(r"^1\.?\s+(Introduction|INTRODUCTION)", t):
                end = k
                break
            if ln.y0 > 0.9 * content[pi].height and ln.size < body_size - 0.5:
                continue  # footnote / footer
            parts.append(t)
            if sum(len(p) for p in parts) > 4000:
                end = k + 1
                break
        abstract = _join_lines(parts).strip()
        front_end = (flat[end][0], flat[end][1]) if end < len(flat) else (len(content[:2]), 0)
        abs_y = ln0.y0 if pi0 == 0 else H
    else:
        abs_y = 0.6 * H
        # fallback: first long paragraph after the title
        for pi, pl in enumerate(content[:1]):
            for b in pl.blocks:
                txt = _join_lines([l.text for l in b.lines])
                if len(txt) > 300 and title_lines and b.y0 > title_lines[-1].y1:
                    abstract = txt
                    break
    authors: list[str] = []
    if title_lines:
        ty1 = title_lines[-1].y1
        zone = [ln for ln in lines if ty1 < ln.y0 < abs_y and ln not in title_lines and ln.y0 < 0.45 * H]
        authors = _authors(zone)
    return title, authors, abstract, front_end


def _authors(zone: list[Line]) -> list[str]:
    out: list[str] = []
    for ln in sorted(zone, key=lambda l: (round(l.y0), l.x0)):
        t = ln.text
        if AFFIL_RE.search(t) or len(t) > 200:
            continue
        t = re.sub(r"[\d∗*†‡§¶,]+(?=\s|$|,)", ",", t)  # footnote marks -> separators
        t = re.sub(r"\s+(and|&)\s+", ",", t)
        for part in re.split(r",|;|\s{3,}|\band\b", t):
            name = part.strip(" .*†‡∗§¶0123456789")
            if re.fullmatch(r"(?:[A-Z][\w'’\-]*\.?\s+){1,3}[A-Z][\w'’\-]+", name) and name not in out:
                out.append(name)
    return out[:40]


def _sections(content: list[PageLayout], boxes, front_end: tuple[int, int]) -> list[Section]:
    body = _body_size(content[:6])
    # running headers/footers: the same (digit-normalised) text near the top/bottom of >= 3 pages
    margin_counts: Counter[str] = Counter()
    for pl in content:
        for ln in pl.lines:
            if ln.y1 < 0.08 * pl.height or ln.y0 > 0.92 * pl.height:
                margin_counts[_norm_margin(ln.text)] += 1
    sections: list[Section] = []
    cur_title, cur_page, cur_lines = None, 1, []

    def flush():
        if cur_title is not None:
            sections.append(Section(title=cur_title, page=cur_page, text=_paragraphs(cur_lines)))

    for pi, pl in enumerate(content):
        tb = boxes.get(pl.index, [])
        prev_block = None
        for li, ln in enumerate(pl.lines):
            if (pi, li) < front_end:
                prev_block = ln.block
                continue
            first_in_block = ln.block != prev_block
            prev_block = ln.block
            if any(b[0] - 2 <= ln.cx <= b[2] + 2 and b[1] - 2 <= ln.cy <= b[3] + 2 for b in tb):
                continue
            if ln.y1 < 0.08 * pl.height or ln.y0 > 0.92 * pl.height:
                if margin_counts[_norm_margin(ln.text)] >= 3 or re.fullmatch(r"\d{1,3}", ln.text.strip()):
                    continue
            h = _heading(ln, first_in_block, body)
            if h:
                flush()
                cur_title, cur_page, cur_lines = h, pl.index + 1, []
                continue
            if cur_title is None:
                cur_title, cur_page, cur_lines = "Preamble", pl.index + 1, []
            cur_lines.append((ln.block, pl.index, ln.text))
    flush()
    return [s for s in sections if s.text or s.title != "Preamble"]


def _paragraphs(lines: list[tuple[int, int, str]]) -> str:
    paras: list[str] = []
    cur: list[str] = []
    key = None
    for b, p, t in lines:
        if key is not None and (b, p) != key:
            paras.append(_join_lines(cur))
            cur = []
        key = (b, p)
        cur.append(t)
    if cur:
        paras.append(_join_lines(cur))
    return "\n".join(paras)
