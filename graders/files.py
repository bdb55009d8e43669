"""The project's one atomic writer and one lenient JSON reader (graders is the lowest layer that
both the agent and the grader import; the grader must not import the agent)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temp file + fsync + rename, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    write_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")


def parse_json(text: str | None) -> Any:
    """A JSON value, or None when the text is not one. A reply that is exactly one fenced JSON
    block is still one JSON value (models like fences); prose around it is not."""
    text = (text or "").strip()
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        text = text[3:-3]
        text = text[4:] if text.lower().startswith("json") else text
    try:
        # strict=False: raw newlines inside strings, which grammar-constrained small models emit
        return json.loads(text, strict=False)
    except (json.JSONDecodeError, RecursionError, TypeError):
        return None
