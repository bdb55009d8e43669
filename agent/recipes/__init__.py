"""Fine-tuning recipes: tested starting points the coding agent may scaffold (registered by name, peft style).

One module per method: full, head (last layers / transfer learning), lora, qlora,
sft (causal-LM fine-tuning, SmolLM2 from its GGUF file) and dpo (preference tuning).
"""
from agent.recipes.base import Recipe, fill_config, get_recipe, register, registry, scaffold_files
from agent.recipes import full, head, lora, qlora, causal_lm, dpo, rlhf  # noqa: F401,E402  (each registers itself)

__all__ = ["Recipe", "fill_config", "get_recipe", "register", "registry", "scaffold_files"]
