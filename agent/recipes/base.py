"""Recipe base class: what a recipe must provide to turn a plan into a runnable submission."""
from __future__ import annotations

from abc import ABC, abstractmethod

from agent.plan import Plan

_REGISTRY: dict[str, "Recipe"] = {}


class Recipe(ABC):
    #: registry name, referenced by Plan.recipe
    name: str = ""
    #: methods (Plan.experiments[].method) this recipe can run
    methods: tuple[str, ...] = ()

    @abstractmethod
    def render(self, plan: Plan) -> dict[str, str]:
        """Return the submission files: relative path -> content (train.py, reproduce.sh, README.md)."""


def register(recipe: Recipe) -> Recipe:
    _REGISTRY[recipe.name] = recipe
    return recipe


def registry() -> dict[str, Recipe]:
    return dict(_REGISTRY)


def get_recipe(name: str) -> Recipe:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
