"""Runtime dependencies injected into nodes (LangGraph runtime context). Never checkpointed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from agent.config import RunConfig


def _no_progress(event: str, **data: Any) -> None:
    return None


@dataclass
class RunContext:
    config: RunConfig
    model: Any  # agent.llm.ChatModel
    judge_model: Any  # same protocol; may be the same object
    #: opens a sandbox: (role) -> Sandbox. Tests swap the backend here.
    sandbox_factory: Callable[[str], Any]
    #: progress callback for the CLI (Rich) — (event, **data)
    progress: Callable[..., None] = field(default=_no_progress)
