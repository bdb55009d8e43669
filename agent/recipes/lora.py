"""LoRA (peft): low-rank adapters on the attention query/value projections; the head is trained too."""
from agent.recipes.base import register
from agent.recipes.classification import ClassificationRecipe


class LoRA(ClassificationRecipe):
    name = "lora"


register(LoRA())
