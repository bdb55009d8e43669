"""DPO-style preference tuning from (prompt, chosen, rejected) pairs; the loss is written in torch.

No trl: the reference log-probabilities are those of the starting model, computed once.
"""
from __future__ import annotations

from agent.plan import Plan
from agent.recipes.base import Recipe, register
from agent.recipes.causal_lm import causal_config


class DPORecipe(Recipe):
    name = "dpo"
    family = "preference"
    template = "dpo_train.py"
    metric = "preference_accuracy"

    def config(self, plan: Plan) -> dict:
        return causal_config(self.name, plan, default_lr=5e-4) | {
            "pairs_file": None,
            "prompt": "Write a positive movie review:\n",
            "beta": 0.1,
            "lora_dropout": 0.0,
        }

register(DPORecipe())
