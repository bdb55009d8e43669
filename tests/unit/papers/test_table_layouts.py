"""Tables read whole (issue 22), on PDFs laid out here with pymupdf at chosen coordinates.

Each case is a layout that lost every cell before: a float wrapped in the text column with its
caption below or beside the body (the caption comes after the numbers in the text layer), a
caption at the bottom of a column or page whose body opens the next one, and a two-level header
whose group label ("GLUE") sits over several columns. The cells are read through the public path,
``load_paper(...).results``, as (row label, column name, printed value).
"""

from __future__ import annotations

import pymupdf
import pytest

from papers import load_paper
from papers.layout import Line, Word, _merge_same_row
from papers.tables import _grid, header_row_count

FS = 9
WORDS = ("parameter efficient methods adapt a frozen network with few weights and we study how the "
         "choice of rank and placement changes the final accuracy on several benchmarks while keeping "
         "the memory of training low enough for one accelerator").split()

ROWS = [("Method", "MNLI", "SST-2", "RTE"), ("Adapter", "84.9", "94.0", "71.5"),
        ("LoRA", "87.5", "95.1", "86.6"), ("Full FT", "87.6", "94.8", "78.7")]
CELLS = {("Adapter", "MNLI", "84.9"), ("Adapter", "RTE", "71.5"), ("LoRA", "SST-2", "95.1"),
         ("LoRA", "RTE", "86.6"), ("Full FT", "MNLI", "87.6"), ("Full FT", "SST-2", "94.8")}


def prose(page, x0: float, x1: float, y: float, nlines: int, lead: float = 11) -> float:
    """Left-aligned running text filling x0..x1 from baseline y; returns the next baseline."""
    k = 0
    for _ in range(nlines):
        line = ""
        while True:
            t = (line + " " + WORDS[k % len(WORDS)]).strip()
            if pymupdf.get_text_length(t, fontsize=FS) > x1 - x0:
                break
            line, k = t, k + 1
        page.insert_text((x0, y), line[:1].upper() + line[1:], fontsize=FS)
        y += lead
    return y


def table(page, xs, y: float, rows, lead: float = 13) -> float:
    for r in rows:
        for x, t in zip(xs, r):
            page.insert_text((x, y), t, fontsize=FS)
        y += lead
    return y


def caption(page, x: float, y: float, lines, fs: float = 8, lead: float = 10) -> None:
    for i, t in enumerate(lines):
        page.insert_text((x, y + i * lead), t, fontsize=fs)


def cells(p, table_id: str) -> set[tuple[str, str, str]]:
    return {(r.row, r.column, r.text) for r in p.results if r.table == table_id}


def only_table(p, table_id: str):
    t = [t for t in p.tables if t.id == table_id]
    assert len(t) == 1, [(t.id, t.page) for t in p.tables]
    return t[0]


def no_prose_in(t) -> None:
    flat = " ".join(c for r in t.rows for c in r)
    assert "frozen" not in flat and "accelerator" not in flat and "benchmarks" not in flat, t.rows


@pytest.mark.parametrize("float_side", ["left", "right"])
def test_caption_below_a_wrapped_float(tmp_path, float_side):
    # the float takes part of the column, the text wraps beside it, the caption sits below the
    # numbers (and after them in the text layer), with the wrapped text running beside it too
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Wrapped Floats in Practice", fontsize=18)
    y = prose(page, 72, 540, 90, 6)
    fx, tx = (72, (300, 540)) if float_side == "left" else (320, (72, 306))
    yt = table(page, [fx + d for d in (4, 94, 144, 194)], y + 12, ROWS)
    caption(page, fx, yt + 4, ["Table 3: Accuracy of three adaptation", "methods on three GLUE tasks."])
    ye = prose(page, tx[0], tx[1], y + 12, 8)
    prose(page, 72, 540, ye + 6, 6)
    f = tmp_path / "wrapped.pdf"
    doc.save(f)

    p = load_paper(f)
    t = only_table(p, "Table 3")
    assert t.rows[0] == ["Method", "MNLI", "SST-2", "RTE"] and t.header_rows == 1
    assert len(t.rows) == 4
    no_prose_in(t)
    assert CELLS <= cells(p, "Table 3")


def test_caption_beside_the_body(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Side Captions in Practice", fontsize=18)
    y = prose(page, 72, 540, 90, 6)
    yt = table(page, (76, 170, 230, 290), y + 14, ROWS)
    caption(page, 350, y + 14, ["Table 4: Accuracy of three adaptation", "methods on three GLUE tasks, with",
                                "the caption set beside the body."])
    prose(page, 72, 540, yt + 10, 6)
    f = tmp_path / "side.pdf"
    doc.save(f)

    p = load_paper(f)
    t = only_table(p, "Table 4")
    assert t.rows[0] == ["Method", "MNLI", "SST-2", "RTE"] and len(t.rows) == 4
    assert t.caption.startswith("Table 4: Accuracy") and t.caption.endswith("beside the body.")
    assert CELLS <= cells(p, "Table 4")


def test_caption_in_the_same_block_after_the_numbers(tmp_path):
    # set tight under the body, the caption lines join the table's text block, after the numbers
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Tight Captions in Practice", fontsize=18)
    y = prose(page, 72, 540, 90, 6)
    yt = table(page, (76, 170, 230, 290), y + 14, ROWS, lead=12)
    caption(page, 72, yt + 1, ["Table 6: Accuracy of three adaptation methods on three GLUE tasks."], fs=FS)
    prose(page, 72, 540, yt + 24, 6)
    f = tmp_path / "tight.pdf"
    doc.save(f)
    blocks = pymupdf.open(f)[0].get_text("blocks")
    assert any("84.9" in b[4] and "Table 6:" in b[4] for b in blocks)  # the layout really is that

    p = load_paper(f)
    t = only_table(p, "Table 6")
    assert t.caption == "Table 6: Accuracy of three adaptation methods on three GLUE tasks."
    assert t.rows[0] == ["Method", "MNLI", "SST-2", "RTE"] and len(t.rows) == 4
    assert CELLS <= cells(p, "Table 6")


def test_caption_at_the_bottom_of_column_one_body_atop_column_two(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((54, 60), "Column Breaks in Practice", fontsize=18)
    y = prose(page, 54, 296, 90, 52)
    caption(page, 54, y + 6, ["Table 2: Accuracy of the adaptation methods", "on three GLUE tasks (dev sets)."])
    yt = table(page, (316, 420, 470, 520), 82, ROWS)
    prose(page, 316, 558, yt + 10, 46)
    page.insert_text((295, 815), "1", fontsize=FS)  # page number under both columns
    f = tmp_path / "colbreak.pdf"
    doc.save(f)

    p = load_paper(f)
    t = only_table(p, "Table 2")
    assert t.page == 1 and len(t.rows) == 4 and t.rows[0] == ["Method", "MNLI", "SST-2", "RTE"]
    no_prose_in(t)
    assert CELLS <= cells(p, "Table 2")
    # the body's lines are not running text of column 2
    col2 = next(s for s in p.sections if "Breaks" in s.title or s.title == "Preamble").text
    assert "87.5" not in col2


@pytest.mark.parametrize("pages", [3, 2])
def test_caption_at_the_end_of_a_page_body_atop_the_next(tmp_path, pages):
    # a running header on every page (3 pages: it repeats, a known running header; 2: it does not)
    doc = pymupdf.open()
    for n in range(4 - pages, 4):
        page = doc.new_page()
        page.insert_text((72, 40), "Generated Paper on Page Breaks", fontsize=8)  # running header
        page.insert_text((295, 815), str(n), fontsize=FS)  # page number
        if n == 1:
            page.insert_text((72, 72), "Page Breaks in Practice", fontsize=18)
            prose(page, 72, 540, 100, 55)
        elif n == 2:
            if pages == 2:
                page.insert_text((72, 60), "Page Breaks in Practice", fontsize=18)
            y = prose(page, 72, 540, 72, 58)
            caption(page, 72, y + 6, ["Table 5: Accuracy of the adaptation methods on three GLUE tasks (dev sets)."])
        else:
            yt = table(page, (76, 220, 290, 360), 80, ROWS)
            prose(page, 72, 540, yt + 12, 30)
    f = tmp_path / "pagebreak.pdf"
    doc.save(f)

    p = load_paper(f)
    t = only_table(p, "Table 5")
    assert t.page == pages  # the page of the numbers
    assert t.rows[0] == ["Method", "MNLI", "SST-2", "RTE"] and len(t.rows) == 4  # no running header
    assert CELLS <= cells(p, "Table 5")
    assert all(r.page == pages for r in p.results if r.table == "Table 5")


def test_caption_at_the_end_of_a_page_does_not_take_a_figure_atop_the_next(tmp_path):
    # a guard for the page-break path: tick labels over a figure's caption are no table body
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Dangling Captions", fontsize=18)
    y = prose(page, 72, 540, 90, 56)
    caption(page, 72, y + 6, ["Table 7: A caption whose table was dropped from the paper."])
    page = doc.new_page()
    for i, (tick, legend) in enumerate([("0.9", "LoRA"), ("0.8", "Adapter"), ("0.7", ""), ("0.6", "Full")]):
        page.insert_text((80, 80 + 20 * i), tick, fontsize=8)
        page.insert_text((300, 80 + 20 * i), legend, fontsize=8)
    page.insert_text((100, 170), "1        2        4        8        16", fontsize=8)
    page.insert_text((72, 190), "Figure 2: Accuracy against the rank r.", fontsize=FS)
    prose(page, 72, 540, 210, 30)
    f = tmp_path / "dangling.pdf"
    doc.save(f)
    assert not load_paper(f).tables


def test_a_caption_beside_a_row_is_not_glued_to_the_rows_last_cell():
    row = dict(y0=100, y1=109, size=9, bold=False, block=0, page=0)
    lines = [Line("Method", 76, x1=106, **row), Line("MNLI", 120, x1=142, **row),
             Line("Table 4: Accuracy of three methods", 180, x1=330, **row)]
    assert [ln.text for ln in _merge_same_row(lines)] == ["Method MNLI", "Table 4: Accuracy of three methods"]


def _two_level_pdf(path) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Grouped Columns in Practice", fontsize=18)
    y = prose(page, 72, 540, 90, 6)
    page.insert_text((72, y + 8), "Table 1: Dev results on GLUE and SQuAD.", fontsize=FS)
    xs = (76, 170, 230, 280, 330, 420, 470)
    rows = [("Model", "Params", "MNLI", "QNLI", "SST-2", "EM", "F1"),
            ("BERT", "110M", "84.6", "90.5", "93.5", "80.8", "88.5"),
            ("DistilBERT", "66M", "82.2", "89.2", "91.3", "77.7", "85.8")]
    w = lambda t: pymupdf.get_text_length(t, fontsize=FS)  # noqa: E731

    def col_x1(c: int) -> float:
        return xs[c] + max(w(r[c]) for r in rows)

    # group labels centred over the columns they group (as LaTeX's \multicolumn sets them),
    # each narrower than its group: "GLUE" touches only QNLI, "SQuAD" sits in the EM/F1 gap
    y0 = y + 40
    page.insert_text(((xs[2] + col_x1(4)) / 2 - w("GLUE") / 2, y0), "GLUE", fontsize=FS)
    page.insert_text(((xs[5] + col_x1(6)) / 2 - w("SQuAD") / 2, y0), "SQuAD", fontsize=FS)
    yt = table(page, xs, y0 + 12, rows)
    prose(page, 72, 540, yt + 12, 8)
    doc.save(path)


def test_two_level_header_names_grouped_columns(tmp_path):
    f = tmp_path / "twolevel.pdf"
    _two_level_pdf(f)
    p = load_paper(f)
    t = only_table(p, "Table 1")
    assert t.header_rows == 2
    assert t.column_labels() == ["Model", "Params", "GLUE / MNLI", "GLUE / QNLI", "GLUE / SST-2", "SQuAD / EM", "SQuAD / F1"]
    got = cells(p, "Table 1")
    assert {("BERT", "GLUE / MNLI", "84.6"), ("BERT", "GLUE / SST-2", "93.5"), ("DistilBERT", "GLUE / QNLI", "89.2"),
            ("BERT", "SQuAD / EM", "80.8"), ("DistilBERT", "SQuAD / F1", "85.8"), ("BERT", "Params", "110M")} <= got
    # every value has exactly one column name, and the ungrouped column is not pulled into a group
    assert len(got) == 12 and not any("/" in c and "Params" in c for _r, c, _v in got)


def _w(x0, x1, y, t):
    return Word(x0, y, x1, y + 8, t, 8)


def test_grid_spreads_a_centred_group_label_and_keeps_wrapped_headers():
    rows = [
        [_w(100, 130, 0, "Model"), _w(150, 180, 0, "# Trainable"), _w(251, 271, 0, "GLUE")],
        [_w(150, 180, 10, "Parameters"), _w(200, 222, 10, "MNLI"), _w(250, 272, 10, "QNLI"), _w(300, 322, 10, "RTE"),
         _w(350, 370, 10, "Avg")],
        [_w(100, 130, 20, "BERT"), _w(150, 175, 20, "110M"), _w(200, 218, 20, "84.6"), _w(250, 268, 20, "90.5"),
         _w(300, 318, 20, "66.4"), _w(350, 368, 20, "80.5")],
        [_w(100, 130, 30, "ELMo"), _w(150, 175, 30, "93M"), _w(200, 218, 30, "76.4"), _w(250, 268, 30, "79.8"),
         _w(300, 318, 30, "56.8"), _w(350, 368, 30, "71.0")],
    ]
    g = _grid(rows)
    assert g[0] == ["Model", "# Trainable", "GLUE", "GLUE", "GLUE", ""]
    assert header_row_count(g) == 2


def test_a_lone_label_over_the_body_is_a_section_row_not_a_header():
    g = [["Method", "Params", "BLEU", "MET"],
         ["", "Medium", "Medium", ""],
         ["LoRA", "0.35M", "47.1", "0.39"],
         ["", "Large", "Large", ""],
         ["LoRA", "0.77M", "47.5", "0.39"]]
    assert header_row_count(g) == 1
