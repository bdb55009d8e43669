"""Real papers: titles and hand-checked table cells (ground truth in tests/fixtures/papers)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from papers import load_paper

REPO = Path(__file__).resolve().parents[3]
REAL = REPO / ".." / "shared" / "papers" / "real"
GT = json.loads((REPO / "tests" / "fixtures" / "papers" / "real_tables.json").read_text())
PAPERS = [k for k in GT if not k.startswith("_")]

pytestmark = pytest.mark.skipif(not REAL.exists(), reason="shared/papers not checked out beside the repo")


@lru_cache(maxsize=None)
def paper(name: str):
    return load_paper(REAL / name)


@pytest.mark.parametrize("name", PAPERS)
def test_title(name):
    assert paper(name).title == GT[name]["title"]


CHECKS = [(n, *c) for n in PAPERS for c in GT[n]["checks"]]


@pytest.mark.parametrize("name,table,row,column,text", CHECKS)
def test_table_cell(name, table, row, column, text):
    p = paper(name)
    hits = [r for r in p.results if r.table == table and row in r.row and column in r.column]
    assert any(r.text == text for r in hits), [(r.row, r.column, r.text) for r in hits][:6]
    r = next(r for r in hits if r.text == text)
    t = next(t for t in p.tables if t.id == table)
    assert r.page == t.page
    # the number is also in the table grid, in a row whose label matches
    assert any(text in cells and any(row in c for c in cells) for cells in t.rows)


@pytest.mark.parametrize("name", PAPERS)
def test_tables_rectangular_and_json(name):
    p = paper(name)
    assert p.tables
    for t in p.tables:
        assert t.rows and len({len(r) for r in t.rows}) == 1
        assert 0 <= t.header_rows <= len(t.rows)
        assert t.page >= 1
    data = p.model_dump(mode="json")
    assert json.loads(json.dumps(data))["title"] == p.title


def test_distilbert_decimals_not_scrambled():
    p = paper("distilbert-1910.01108.pdf")
    cells = [c for t in p.tables for r in t.rows for c in r]
    assert "91.3" in cells
    assert not any("\n" in c or c.endswith("\n.") for c in cells)


def test_attention_spanning_header_repeated():
    t = next(t for t in paper("attention-1706.03762.pdf").tables if t.id == "Table 2")
    head = t.rows[0]
    assert head.count("BLEU") == 2
    labels = t.column_labels()
    assert "BLEU EN-DE" in labels and "BLEU EN-FR" in labels


def test_sections_in_reading_order():
    p = paper("attention-1706.03762.pdf")
    titles = [s.title for s in p.sections]
    assert titles.index("1 Introduction") < titles.index("2 Background") < titles.index("7 Conclusion")
    assert p.abstract.startswith("The dominant sequence transduction models")
    assert "Ashish Vaswani" in p.authors


def test_two_column_side_by_side_tables_are_separate():
    p = paper("ulmfit-1801.06146-acl2018-rgcover.pdf")
    t2 = next(t for t in p.tables if t.id == "Table 2")
    t3 = next(t for t in p.tables if t.id == "Table 3")
    assert not any("DBpedia" in c for r in t2.rows for c in r)
    assert any("DBpedia" in c for r in t3.rows for c in r)


def test_hyperparameters_found_with_pages():
    p = paper("lora-2106.09685.pdf")
    names = {h.name for h in p.hyperparameters}
    assert {"learning_rate", "batch_size", "epochs", "lora_alpha", "max_seq_length", "optimizer"} <= names
    assert all(1 <= h.page <= p.pages for h in p.hyperparameters)
    lr = [h for h in p.hyperparameters if h.name == "learning_rate" and h.page == 19]
    assert any(h.value == "5E-04" for h in lr)


def test_jmir_columns_reversed_warning_and_abstract():
    p = paper("jmir-dementia-caregiver-tweet-classification-2022.pdf")
    assert any("columns reversed" in w for w in p.warnings)
    assert p.abstract.startswith("Background:")


def test_text_budget():
    p = paper("distilbert-1910.01108.pdf")
    full = p.text()
    assert full.startswith("# DistilBERT")
    assert "Table 1" in full
    short = p.text(max_chars=500)
    assert len(short) <= 500 and short.endswith("[… truncated]")
