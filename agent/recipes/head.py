"""Transfer learning: the encoder is frozen; only the last layers (pooler + classifier head) train."""
from agent.recipes.base import register
from agent.recipes.classification import ClassificationRecipe


class HeadOnly(ClassificationRecipe):
    name = "head"


register(HeadOnly())
