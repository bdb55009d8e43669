"""What the broker has fetched, one record per asset: where from, which revision, every file's
size and sha256, the licence. A record is written last and atomically, after every file is in
place and verified, so an interrupted fetch leaves nothing that looks complete."""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from graders.files import write_json

Kind = Literal["model", "dataset", "packages"]


class FileEntry(BaseModel):
    size: int
    sha256: str


class AssetRecord(BaseModel):
    kind: Kind
    id: str
    """Hub id ("org/name"), or the requirement strings of a package set."""
    source: str
    """Origin fetched from (a Hub endpoint, the pip index), or "catalogue" for what ships offline."""
    revision: str | None = None
    """The commit the Hub resolved the request to (pinned: later runs load the same bytes)."""
    requested: str | None = None
    """The revision as asked for (a branch, a tag or a commit); None = the default branch."""
    config: str | None = None
    licence: str | None = None
    files: dict[str, FileEntry] = Field(default_factory=dict)
    sandbox_path: str = ""
    how: str = ""
    """One line of code that loads it inside the sandbox, as the agent would write it."""
    fetched_at: float = Field(default_factory=time.time)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    @property
    def digest(self) -> str:
        """One hash for the whole asset: sha256 over the sorted (path, sha256) pairs."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}\0{self.files[name].sha256}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict:
        return {"kind": self.kind, "id": self.id, "source": self.source, "revision": self.revision,
                "config": self.config, "licence": self.licence, "bytes": self.bytes, "files": len(self.files),
                "sha256": self.digest, "sandbox_path": self.sandbox_path, "how": self.how}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def record_key(kind: str, ident: str, ref: str | None, config: str | None = None) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", ident.strip())[:120]
    ref_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ref or "default")[:60]
    extra = f"--{re.sub(r'[^A-Za-z0-9._-]+', '-', config)}" if config else ""
    digest = hashlib.sha256(f"{kind}\0{ident}\0{ref}\0{config}".encode()).hexdigest()[:10]
    return f"{kind}--{slug}{extra}@{ref_slug}-{digest}"


class RecordStore:
    """``<root>/records/<key>.json``: complete assets only."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "records"

    def get(self, key: str) -> AssetRecord | None:
        f = self.dir / f"{key}.json"
        try:
            return AssetRecord.model_validate(json.loads(f.read_text()))
        except (OSError, ValueError):
            return None  # absent, or not a complete record: fetch again

    def put(self, key: str, record: AssetRecord) -> None:
        write_json(self.dir / f"{key}.json", record.model_dump(mode="json"))
