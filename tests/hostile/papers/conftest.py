"""Hostile PDFs made on the spot with MuPDF, so these cases run everywhere (no shared/ needed)."""
from __future__ import annotations

import re
from pathlib import Path

import pymupdf
import pytest

USER_PW = "open-sesame"
BODY = "Ordinary body text about fine-tuning language models on small data."


def text_pdf(pages: int, lines: int = 30) -> pymupdf.Document:
    """A born-digital paper: a title and ``lines`` lines of real text on every page."""
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        page.insert_text((72, 72), f"A Generated Paper, page {i + 1}", fontsize=16)
        page.insert_text((72, 100), "\n".join(f"{BODY} ({j})" for j in range(lines)), fontsize=10)
    return doc


@pytest.fixture
def encrypted_pdf(tmp_path) -> Path:
    """AES-256 with a user password: nothing opens without it."""
    f = tmp_path / "encrypted.pdf"
    text_pdf(2).save(f, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=USER_PW, owner_pw="owner-" + USER_PW)
    assert pymupdf.open(f).needs_pass  # the input really is locked, or the test proves nothing
    return f


@pytest.fixture
def complete_pdf(tmp_path) -> Path:
    f = tmp_path / "complete.pdf"
    text_pdf(3).save(f)
    return f


@pytest.fixture
def truncated_pdf(tmp_path, complete_pdf) -> Path:
    """A download cut off after the page tree, before page 1's text: the pages are there, the text is not."""
    data = complete_pdf.read_bytes()
    first_stream = pymupdf.open(complete_pdf)[0].get_contents()[0]
    cut = re.search(rb"(?<![0-9])%d 0 obj" % first_stream, data).start()
    f = complete_pdf.with_name("truncated.pdf")
    f.write_bytes(data[:cut])
    return f


@pytest.fixture
def thousand_page_pdf(tmp_path) -> Path:
    f = tmp_path / "thousand.pdf"
    text_pdf(1100, lines=2).save(f)
    return f
