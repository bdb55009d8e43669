"""Real papers: titles and hand-checked table cells (ground truth in tests/fixtures/papers)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from papers import load_paper
from tests.conftest import SHARED, need_shared

REPO = Path(__file__).resolve().parents[3]
REAL = SHARED / "papers" / "real"
GT = json.loads((REPO / "tests" / "fixtures" / "papers" / "real_tables.json").read_text())
PAPERS = [k for k in GT if not k.startswith("_")]



@pytest.fixture(autouse=True)
def _real_papers():
    """Every test here reads the real papers: a requirement (fails under make test, else skips)."""
    need_shared("papers/real")


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


# Two-level headers (issue 22): a group label over several columns, joined to each column's
# name with " / ". Cells read by hand off the PDFs' text layer (pymupdf words, by position).
GROUPED = [
    ("lora-2106.09685.pdf", "Table 3", "GPT-2 M (LoRA)", "E2E NLG Challenge / BLEU", "70.4±.1"),
    ("lora-2106.09685.pdf", "Table 3", "GPT-2 M (LoRA)", "E2E NLG Challenge / CIDEr", "2.53±.02"),
    ("lora-2106.09685.pdf", "Table 3", "GPT-2 L (LoRA)", "E2E NLG Challenge / ROUGE-L", "72.0±.2"),
    ("lora-2106.09685.pdf", "Table 14", "LoRA (0.35M)", "WebNLG / BLEU↑ / U", "46.7±.4"),
    ("lora-2106.09685.pdf", "Table 14", "LoRA (0.35M)", "WebNLG / TER↓ / S", ".33"),
    ("lora-2106.09685.pdf", "Table 14", "LoRA (0.77M)", "WebNLG / BLEU↑ / A", "57.0±.1"),
    ("bert-1810.04805.pdf", "Table 2", "Human", "Test / F1", "91.2"),
    ("bert-1810.04805.pdf", "Table 2", "R.M. Reader (Ensemble)", "Test / EM", "82.3"),
    ("bert-1810.04805.pdf", "Table 2", "BERTLARGE (Ens.+TriviaQA)", "Dev / EM", "86.2"),
    ("bert-1810.04805.pdf", "Table 3", "Human", "Dev / F1", "89.0"),
    ("bert-1810.04805.pdf", "Table 3", "BERTLARGE (Single)", "Test / EM", "80.0"),
]


@pytest.mark.parametrize("name,table,row,column,text", GROUPED)
def test_two_level_header_cell(name, table, row, column, text):
    p = paper(name)
    got = [(r.row, r.column, r.text) for r in p.results if r.table == table]
    assert (row, column, text) in got, [g for g in got if g[0] == row]


def test_two_level_header_columns_and_section_rows():
    t = next(t for t in paper("lora-2106.09685.pdf").tables if t.id == "Table 13")
    # "GPT-2 Medium" over the body names a block of rows, not a column
    assert t.header_rows == 2
    assert t.column_labels()[2:] == ["DART / BLEU↑", "DART / MET↑", "DART / TER↓"]
    t = next(t for t in paper("bert-1810.04805.pdf").tables if t.id == "Table 2")
    assert t.column_labels() == ["System", "Dev / EM", "Dev / F1", "Test / EM", "Test / F1"]
    assert len(t.rows) >= 14  # the whole body, not only the rows below the other column's caption


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
    assert "BLEU / EN-DE" in labels and "BLEU / EN-FR" in labels


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
    # Table 9's "LR Schedule | Linear" row is the schedule, not a learning rate; a "-" cell is no value
    numeric = {"learning_rate", "batch_size", "epochs"}
    assert not [h for h in p.hyperparameters if h.name in numeric and not any(ch.isdigit() for ch in h.value)]
    assert any(h.name == "lr_schedule" and h.value == "Linear" and h.page == 19 for h in p.hyperparameters)
    # each column's cell is its own statement, under the label of the rows' group: whose rate it is
    contexts = {h.context for h in lr}
    assert {"Table 9: RoBERTa base / Learning Rate | SST-2 = 5E-04", "Table 9: RoBERTa base / Learning Rate | MNLI = 5E-04",
            "Table 9: RoBERTa large / Learning Rate | SST-2 = 4E-04"} <= contexts, sorted(contexts)


def test_a_long_sentences_hyperparameter_keeps_the_words_before_its_value():
    """The demo paper states three rates in one 400-character sentence: each statement keeps the
    part that names its method (the third, "(c) full finetuning … 5e-5", lies past 300 characters)."""
    from papers.ingest import load_paper

    p = load_paper(Path(__file__).parents[3] / "papers" / "demo-minilm-sentiment" / "paper.pdf")
    assert all(len(h.context) <= 300 for h in p.hyperparameters)
    lr = {h.value: h.context for h in p.hyperparameters if h.name == "learning_rate"}
    assert re.search(r"\(c\) full finetuning of all weights, learning rate 5e-0?5", lr["5e-05"]), lr


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


def test_a_batch_size_that_times_inference_is_no_training_setting():
    """DistilBERT times inference "on CPU with a batch size of 1" (p. 2, p. 3): the plan had trained
    every experiment at batch size 1, overruling a capable model's 32 with it."""
    p = paper("distilbert-1910.01108.pdf")
    assert not [h for h in p.hyperparameters if h.name == "batch_size"], \
        [(h.value, h.context[:80]) for h in p.hyperparameters if h.name == "batch_size"]
    lora = paper("lora-2106.09685.pdf")  # a training batch size is still found
    assert any(h.name == "batch_size" and h.value == "16" for h in lora.hyperparameters)
