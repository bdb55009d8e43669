"""What a run may fetch: allowed sources, the paper's blacklist, size caps. Checked before any
byte moves; a refusal names the rule and what the agent (or the user) can do about it."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HUB = "https://huggingface.co"
DEFAULT_PYPI = "https://pypi.org/simple"
SOURCES_ENV = "REPRO_ASSET_SOURCES"  # comma-separated URLs a user adds (a company mirror, an index)


def hub_endpoint() -> str:
    """The Hub the host talks to: HF_ENDPOINT (a mirror such as an olah server) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")


def _origin(url: str) -> str:
    p = urlparse(url)
    return f"{p.scheme}://{p.netloc}".lower() if p.scheme and p.netloc else url.rstrip("/").lower()


class AssetRules(BaseModel):
    """Frozen per run. Sources are origins (scheme://host[:port]); a user's own HF_ENDPOINT is
    allowed by default (the user chose it), anything else only when listed."""

    model_config = ConfigDict(frozen=True)

    sources: tuple[str, ...] = Field(default_factory=lambda: _default_sources())
    blacklist: tuple[str, ...] = ()
    """The paper's blacklist (PaperBench's blacklist.txt): URLs or ids the replication must not use."""
    max_asset_bytes: int = 8 << 30
    """One model, dataset or set of packages."""
    max_run_bytes: int = 40 << 30
    """Everything one run fetches."""

    def source_refusal(self, url: str) -> str | None:
        origin = _origin(url)
        if origin in {_origin(s) for s in self.sources}:
            return None
        return (f"source {origin} is not allowed (allowed: {', '.join(self.sources) or 'none'}); "
                f"a user adds one with {SOURCES_ENV}")

    def blacklist_refusal(self, kind: str, repo_id: str) -> str | None:
        rid = repo_id.strip().lower()
        urls = {rid, f"huggingface.co/{rid}", f"huggingface.co/datasets/{rid}", f"pypi.org/project/{rid}"}
        for entry in self.blacklist:
            e = re.sub(r"^https?://(www\.)?", "", entry.strip().lower()).rstrip("/")
            if e and (e in urls or any(u.startswith(e + "/") for u in urls)):
                return f"{kind} {repo_id} is on the paper's blacklist ({entry.strip()}): find another source"
        return None

    def size_refusal(self, kind: str, repo_id: str, size: int, used: int) -> str | None:
        if size > self.max_asset_bytes:
            return (f"{kind} {repo_id} is {_gib(size)}, over the cap of {_gib(self.max_asset_bytes)} per asset: "
                    f"ask for fewer files (patterns) or a smaller variant")
        if used + size > self.max_run_bytes:
            return (f"{kind} {repo_id} ({_gib(size)}) would take this run over its cap of "
                    f"{_gib(self.max_run_bytes)} ({_gib(used)} fetched already)")
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def _default_sources() -> tuple[str, ...]:
    extra = [s.strip() for s in os.environ.get(SOURCES_ENV, "").split(",") if s.strip()]
    return tuple(dict.fromkeys([DEFAULT_HUB, hub_endpoint(), DEFAULT_PYPI, *extra]))


def read_blacklist(paper_dir: Path | None) -> tuple[str, ...]:
    """PaperBench's ``blacklist.txt`` beside the paper: one URL per line, ``none`` for none."""
    f = paper_dir / "blacklist.txt" if paper_dir else None
    if f is None or not f.is_file():
        return ()
    lines = [x.strip() for x in f.read_text(errors="replace").splitlines()]
    return tuple(x for x in lines if x and not x.startswith("#") and x.lower() != "none")
