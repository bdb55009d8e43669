"""Table-building pieces on synthetic input (no PDF needed)."""

from __future__ import annotations

import pymupdf
import pytest

from papers import load_paper
from papers.layout import Word
from papers.tables import _grid, first_number, header_row_count, is_numeric, repair_number_text


@pytest.mark.parametrize("raw,fixed", [
    ("34 .60±3 .69", "34.60±3.69"),
    ("913\n.", "913\n."),  # not a digit-newline-decimal pattern: left alone
    ("91\n.3", "91.3"),
    ("87.1 ± 0.2", "87.1±0.2"),
    ("12.5 %", "12.5%"),
    ("BERT base", "BERT base"),
])
def test_repair_number_text(raw, fixed):
    assert repair_number_text(raw) == fixed


@pytest.mark.parametrize("cell,num", [
    ("91.3", True), ("34.60±3.69", True), ("81.2/88.5", True), ("3.80\u2217", True), ("0.3M", True),
    ("12.69%", True), ("BERT-base", False), ("", False), ("-", False), ("Layer-0", False),
])
def test_is_numeric(cell, num):
    assert is_numeric(cell) is num


def test_first_number():
    assert first_number("34.60±3.69") == pytest.approx(34.60)
    assert first_number("25,000") == 25000
    assert first_number("-2.96") == pytest.approx(-2.96)
    assert first_number("abc") is None


def _w(x0, x1, y, t):
    return Word(x0, y, x1, y + 8, t, 8)


def test_grid_spanning_header_repeated_and_rectangular():
    rows = [
        [_w(100, 130, 0, "Model"), _w(160, 240, 0, "GLUE")],
        [_w(160, 190, 10, "SST-2"), _w(210, 240, 10, "MNLI")],
        [_w(100, 130, 20, "BERT"), _w(162, 180, 20, "91.3"), _w(212, 230, 20, "84.6")],
        [_w(100, 140, 30, "ELMo"), _w(162, 180, 30, "90.4"), _w(212, 230, 30, "76.4")],
    ]
    g = _grid(rows)
    assert g[0] == ["Model", "GLUE", "GLUE"]
    assert g[1] == ["", "SST-2", "MNLI"]
    assert g[2] == ["BERT", "91.3", "84.6"]
    assert header_row_count(g) == 2


def test_grid_repairs_split_decimal_words():
    rows = [
        [_w(100, 130, 0, "Model"), _w(160, 200, 0, "Acc")],
        [_w(100, 130, 10, "A"), _w(160, 169, 10, "34"), _w(170, 190, 10, ".60±3"), _w(191, 199, 10, ".69")],
        [_w(100, 130, 20, "B"), _w(160, 199, 20, "33.10±1.02")],
    ]
    g = _grid(rows)
    assert g[1] == ["A", "34.60±3.69"]


def _pdf_with(tmp_path, lines, name="t.pdf"):
    doc = pymupdf.open()
    page = doc.new_page()
    y = 72
    for text, kw in lines:
        page.insert_text((72, y), text, **kw)
        y += 16
    out = tmp_path / name
    doc.save(out)
    return out


def test_latex_braces_survive(tmp_path):
    body = [("1 Introduction", {"fontsize": 14, "fontname": "hebo"})]
    body += [(f"We minimise the loss {{criterion}} with \\frac{{a}}{{b}} and keep {{x_{{i}}}} intact {i}.", {"fontsize": 10})
             for i in range(30)]
    path = _pdf_with(tmp_path, [("A Study of Braces", {"fontsize": 20})] + body)
    p = load_paper(path)
    txt = p.text()
    assert "{criterion}" in txt and "\\frac{a}{b}" in txt and "{x_{i}}" in txt


def test_short_words_in_cells_survive_and_vertical_stamps_do_not(tmp_path):
    # "(r" and "8)" are taller than wide; they are horizontal text all the same.
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "A Table Test", fontsize=20)
    page.insert_text((72, 120), "Table 1: Accuracy of the methods.", fontsize=10)
    for i, (name, acc) in enumerate([("Method", "Accuracy"), ("LoRA (r = 8)", "81.2"), ("Full", "83.4")]):
        page.insert_text((72, 140 + 14 * i), name, fontsize=10)
        page.insert_text((220, 140 + 14 * i), acc, fontsize=10)
    page.insert_text((30, 500), "arXiv:2101.00001v1", fontsize=12, rotate=90)
    out = tmp_path / "cells.pdf"
    doc.save(out)
    p = load_paper(out)
    rows = p.tables[0].rows
    assert ["LoRA (r = 8)", "81.2"] in rows
    assert "arXiv" not in p.text()
