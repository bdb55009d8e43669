"""Full fine-tuning: every weight of the encoder and the new head is trained."""
from agent.recipes.base import register
from agent.recipes.classification import ClassificationRecipe


class FullFineTuning(ClassificationRecipe):
    name = "full"


register(FullFineTuning())
