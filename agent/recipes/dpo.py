"""DPO-style preference tuning from (prompt, chosen, rejected) pairs; the loss is written in torch.

No trl: the reference log-probabilities are those of the starting model, computed once.
"""
from __future__ import annotations

from agent.plan import Plan
from agent.recipes.base import Recipe, register


class DPORecipe(Recipe):
    name = "dpo"
    family = "preference"
    template = "dpo_train.py"
    metric = "preference_accuracy"

    def config(self, plan: Plan) -> dict:
        h = plan.hyper
        return {
            "method": self.name,
            "model_name": plan.causal_model,
            "dataset": plan.dataset,
            "pairs_file": None,
            "prompt": "Write a positive movie review:\n",
            "seed": h.seed,
            "epochs": h.epochs,
            "batch_size": min(h.batch_size, 8),
            "learning_rate": {self.name: h.learning_rate.get(self.name, 5e-4)},
            "beta": 0.1,
            "max_length": min(h.max_length, 64),
            "test_fraction": 0.2,
            "train_limit": h.train_limit,
            "eval_limit": 200,
            "peft": "lora",
            "lora_r": h.lora_r,
            "lora_alpha": h.lora_alpha,
            "lora_dropout": 0.0,
            "lora_target_modules": ["q_proj", "v_proj"],
            "grad_clip": 1.0,
        }


register(DPORecipe())
