"""QLoRA: the base model quantised to 4-bit NF4 (bitsandbytes) with LoRA adapters on top.

bitsandbytes' 4-bit kernels need CUDA. Without it the script says so, trains plain LoRA in
full precision instead and writes that substitution into metrics.json (``deviations``); the
plan records the same deviation up front so the report can explain the numbers.
"""
from __future__ import annotations

import importlib.util

from agent.plan import Deviation, Plan
from agent.recipes.base import register
from agent.recipes.classification import ClassificationRecipe


def qlora_possible() -> bool:
    """CUDA and bitsandbytes both present (checked where the code will run)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


CPU_DEVIATION = Deviation(
    what="quantisation (QLoRA)", paper="4-bit NF4 base model + LoRA",
    ours="LoRA on the full-precision base model",
    reason="no CUDA GPU / bitsandbytes here: 4-bit kernels need CUDA",
)


class QLoRA(ClassificationRecipe):
    name = "qlora"

    def deviations(self, plan: Plan, env: dict | None = None) -> list[Deviation]:
        cuda = (env or {}).get("cuda")
        if cuda is None:
            cuda = qlora_possible()
        return [] if cuda else [CPU_DEVIATION]


register(QLoRA())
