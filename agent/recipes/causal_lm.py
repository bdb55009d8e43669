"""Causal-LM fine-tuning (self-supervised next-token prediction), e.g. SmolLM2 from its GGUF file.

transformers loads a GGUF with ``gguf_file=`` and de-quantises it to float32 (the ``gguf``
package must be installed where the script runs). Default: LoRA adapters on q/v (cheap on CPU);
``Hyper``-independent knobs live in the config block.
"""
from __future__ import annotations

from agent.plan import Plan
from agent.recipes.base import Recipe, register


class CausalLMRecipe(Recipe):
    family = "causal-lm"
    template = "causal_lm_train.py"
    metric = "perplexity"
    higher_is_better = False
    name = "sft"

    def config(self, plan: Plan) -> dict:
        return causal_config(self.name, plan, default_lr=5e-5) | {
            "weight_decay": 0.0,
            "lora_dropout": 0.05,
            "checkpoint_every": 50,
        }


def causal_config(name: str, plan: Plan, *, default_lr: float) -> dict:
    """The config block shared by the recipes that tune a causal LM (SFT and DPO)."""
    h = plan.hyper
    return {
        "method": name,
        "model_name": plan.causal_model,
        "dataset": plan.dataset,
        "seed": h.seed,
        "epochs": h.epochs,
        "batch_size": min(h.batch_size, 8),
        "learning_rate": {name: h.learning_rate.get(name, default_lr)},
        "max_length": min(h.max_length, 64),
        "test_fraction": 0.2,
        "train_limit": h.train_limit,
        "eval_limit": 200,
        "peft": "lora",
        "lora_r": h.lora_r,
        "lora_alpha": h.lora_alpha,
        "lora_target_modules": ["q_proj", "v_proj"],
        "grad_clip": 1.0,
    }

register(CausalLMRecipe())
