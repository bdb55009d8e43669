"""`repro paper inspect PAPER.pdf [--json] [--password P] [--ocr]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table as RichTable

from .errors import PaperError
from .ingest import load_paper

paper_app = typer.Typer(help="Inspect research-paper PDFs.", no_args_is_help=True)


@paper_app.callback()
def _main() -> None:
    """Paper ingestion commands."""


@paper_app.command("inspect")
def inspect(
    pdf: Path = typer.Argument(..., help="Paper PDF to read."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    password: Optional[str] = typer.Option(None, "--password", help="User password of an encrypted PDF."),
    ocr: bool = typer.Option(False, "--ocr", help="OCR pages without a text layer (needs Tesseract)."),
) -> None:
    """Show title, authors, abstract, sections, tables, results and hyper-parameters."""
    try:
        paper = load_paper(pdf, password=password, ocr=ocr)
    except PaperError as e:
        Console(stderr=True).print(f"[bold red]error[/] ({e.kind}): {e}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2)
    if as_json:
        data = paper.model_dump(mode="json")
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    con = Console()
    con.rule(paper.title or "(untitled)", style="bold")
    con.print(f"[dim]{paper.source} · {paper.pages} pages · sha256 {paper.sha256[:16]}[/]", markup=True)
    if paper.authors:
        con.print("[bold]Authors:[/] " + ", ".join(paper.authors), markup=True, highlight=False)
    if paper.abstract:
        con.print("\n[bold]Abstract[/]", markup=True)
        con.print(paper.abstract, markup=False, highlight=False)
    if paper.sections:
        con.print("\n[bold]Sections[/]", markup=True)
        for s in paper.sections:
            con.print(f"  p{s.page:<3} {s.title}", markup=False, highlight=False)
    for t in paper.tables:
        rt = RichTable(title=f"{t.id} (p{t.page})", caption=t.caption, show_header=t.header_rows > 0)
        ncols = len(t.rows[0]) if t.rows else 0
        labels = t.column_labels() if t.header_rows else [""] * ncols
        for lab in labels:
            rt.add_column(lab, overflow="fold")
        for r in t.rows[t.header_rows:]:
            rt.add_row(*r)
        con.print(rt)
    if paper.results:
        rt = RichTable(title=f"Reported results ({len(paper.results)})")
        for c in ("table", "row", "column", "value", "metric", "page"):
            rt.add_column(c)
        for r in paper.results:
            rt.add_row(r.table, r.row, r.column, r.text, r.unit_or_metric or "", str(r.page))
        con.print(rt)
    if paper.hyperparameters:
        rt = RichTable(title=f"Hyper-parameters ({len(paper.hyperparameters)})")
        for c in ("name", "value", "page", "context"):
            rt.add_column(c, overflow="fold")
        for h in paper.hyperparameters:
            rt.add_row(h.name, h.value, str(h.page), h.context[:120])
        con.print(rt)
    for w in paper.warnings:
        con.print(f"[yellow]warning:[/] {w}", markup=True, highlight=False)
