"""The sequence-classification family: a pre-trained encoder + a classifier head.

Methods (one module each: full.py, head.py, lora.py, qlora.py) share the tested template
templates/classify_train.py; a recipe only fills its config block from the plan.
"""
from __future__ import annotations

from agent.plan import Plan
from agent.recipes.base import Recipe


class ClassificationRecipe(Recipe):
    family = "sequence-classification"
    template = "classify_train.py"
    metric = "accuracy"

    def config(self, plan: Plan) -> dict:
        h = plan.hyper
        return {
            "method": self.name,
            "model_name": plan.model,
            "dataset": plan.dataset,
            "dataset_config": plan.dataset_config,
            "seed": h.seed,
            "epochs": h.epochs,
            "batch_size": h.batch_size,
            "learning_rate": dict(h.learning_rate),
            "weight_decay": h.weight_decay,
            "warmup_ratio": h.warmup_ratio,
            "max_length": h.max_length,
            "test_fraction": 0.2,
            "train_limit": h.train_limit,
            "lora_r": h.lora_r,
            "lora_alpha": h.lora_alpha,
            "lora_dropout": h.lora_dropout,
            "lora_target_modules": ["query", "value"],
        }
