"""Structured representation of an ingested paper (pydantic v2)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Section(BaseModel):
    title: str
    page: int  # 1-based page where the heading appears
    text: str


class Table(BaseModel):
    id: str  # e.g. "Table 2"
    page: int  # 1-based
    caption: str | None = None
    header_rows: int = 0
    rows: list[list[str]] = Field(default_factory=list)  # header rows first; rectangular

    def column_labels(self) -> list[str]:
        """One name per column from the header rows. A group label spanning several columns is joined
        to the names under it with " / " ("GLUE / MNLI"); a header wrapped onto two rows is joined with
        a space ("# Trainable Parameters")."""
        if not self.rows:
            return []
        ncols = len(self.rows[0])
        head = [[(r[c].strip() if c < len(r) else "") for c in range(ncols)] for r in self.rows[: self.header_rows]]

        def group(k: int, c: int) -> bool:
            # the cell spans a run of columns, and a lower header row names them apart
            a = b = c
            while a > 0 and head[k][a - 1] == head[k][c]:
                a -= 1
            while b + 1 < ncols and head[k][b + 1] == head[k][c]:
                b += 1
            return b > a and any(len({r[x] for x in range(a, b + 1) if r[x]}) >= 2 for r in head[k + 1:])

        labels: list[str] = []
        for c in range(ncols):
            label, prev_group, last = "", False, None
            for k, r in enumerate(head):
                cell = r[c]
                if not cell or cell == last:
                    continue
                g = group(k, c)
                label = cell if not label else label + (" / " if prev_group else " ") + cell
                prev_group, last = g, cell
            labels.append(label)
        return labels


class ReportedResult(BaseModel):
    table: str  # Table.id
    row: str  # row label
    column: str  # column label (header rows joined)
    value: float  # first number of the cell
    text: str  # cell as printed, e.g. "91.3" or "34.60±3.69"
    unit_or_metric: str | None = None
    page: int


class Hyperparameter(BaseModel):
    name: str  # canonical name, e.g. "learning_rate"
    value: str  # as printed, e.g. "2e-5"
    page: int
    context: str  # the sentence / table cell it came from


class Paper(BaseModel):
    source: str
    sha256: str
    title: str
    authors: list[str] = Field(default_factory=list)
    abstract: str = ""
    pages: int
    sections: list[Section] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    results: list[ReportedResult] = Field(default_factory=list)
    hyperparameters: list[Hyperparameter] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def text(self, max_chars: int | None = None) -> str:
        """Clean full text for prompts: title, abstract, sections, then tables.

        Hidden text (invisible, white, microscopic) was removed at ingestion and never
        appears here. ``max_chars`` truncates the result (with a marker) when given.
        """
        parts: list[str] = []
        if self.title:
            parts.append(f"# {self.title}")
        if self.authors:
            parts.append(", ".join(self.authors))
        if self.abstract:
            parts.append("## Abstract\n" + self.abstract)
        for s in self.sections:
            parts.append(f"## {s.title}\n{s.text}".rstrip())
        for t in self.tables:
            lines = [f"### {t.id} (page {t.page})" + (f": {t.caption}" if t.caption else "")]
            for row in t.rows:
                lines.append(" | ".join(row))
            parts.append("\n".join(lines))
        out = "\n\n".join(parts)
        if max_chars is not None and len(out) > max_chars:
            marker = "\n[… truncated]"
            if max_chars <= len(marker):
                return out[:max_chars]
            out = out[: max_chars - len(marker)] + marker
        return out
