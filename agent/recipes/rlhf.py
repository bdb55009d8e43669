"""RLHF: a reward model trained on preference pairs (TRL's RewardTrainer), then online RL of the
causal LM against it (TRL's GRPOTrainer, LoRA, a KL penalty to the starting model)."""
from __future__ import annotations

from agent.plan import Plan
from agent.recipes.base import Recipe, register, template_config
from sandbox.broker import catalogue


class RLHFRecipe(Recipe):
    name = "rlhf"
    family = "rlhf"
    template = "rlhf_train.py"
    metric = "mean_reward"

    def config(self, plan: Plan) -> dict:
        cfg = template_config(self.template)  # the tested defaults: CPU-sized
        h = plan.hyper
        encoder = catalogue.lookup("model", plan.model)
        return cfg | {
            "model_name": plan.causal_model,
            # the reward model starts from the plan's encoder when it is a bundled one
            "reward_base": encoder.name if encoder and encoder.role == "encoder" else cfg["reward_base"],
            "dataset": plan.dataset if catalogue.lookup("dataset", plan.dataset) else cfg["dataset"],
            "seed": h.seed,
            "learning_rate": h.learning_rate.get(self.name, cfg["learning_rate"]),
        }


register(RLHFRecipe())
