"""Runtime dependencies injected into nodes (LangGraph runtime context). Never checkpointed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from agent.config import RunConfig
from sandbox import assets


def _no_progress(event: str, **data: Any) -> None:
    return None


@dataclass(frozen=True)
class Offline:
    """What this machine has at hand for a replication (the plan substitutes these for the paper's
    own model and data, each substitution a deviation). Facts of the environment, not of a paper."""

    encoder: str = assets.MODEL_NAME
    encoder_params: str = "22.7M parameters"
    decoder: str = assets.GGUF_NAME
    dataset: str = assets.DATA_NAME
    datasets: tuple[str, ...] = assets.DATA_FILES
    dataset_about: str = ("10,568 movie-review snippets (Hutto & Gilbert 2014), label = sign of the mean rating")
    max_epochs: int = 3
    """Epochs a CPU run allows when the paper asks for more."""
    max_batch_size: int = 64
    cuda: bool = False


@dataclass
class RunContext:
    config: RunConfig
    model: Any  # agent.llm.ChatModel
    judge_model: Any  # same protocol; may be the same object
    #: opens a sandbox: (role, **options) -> Sandbox. Tests swap the backend here.
    sandbox_factory: Callable[..., Any]
    #: progress callback for the CLI (Rich) — (event, **data)
    progress: Callable[..., None] = field(default=_no_progress)
    offline: Offline = field(default_factory=Offline)
    #: the run's workspace (agent.workspace.Workspace), opened on first use and kept for the run
    workspace: Any = None
    #: the asset broker (sandbox.broker.Broker): the paper's models, data, packages; None in unit tests
    broker: Any = None
