"""Paper ingestion: PDF -> structured :class:`Paper` (title, sections, tables, results…)."""

from .errors import PaperError
from .ingest import load_paper
from .paper import Hyperparameter, Paper, ReportedResult, Section, Table

__all__ = ["PaperError", "load_paper", "Paper", "Section", "Table", "ReportedResult", "Hyperparameter"]
