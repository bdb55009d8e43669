"""Fine-tuning recipes: tested code templates the agent fills (registered by name, peft style)."""
from agent.recipes.base import Recipe, get_recipe, register, registry
from agent.recipes import classification  # noqa: F401  (registers itself)

__all__ = ["Recipe", "get_recipe", "register", "registry"]
