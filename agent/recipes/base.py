"""Recipe base class and registry (peft style: one module per method, registered by name).

A recipe is a tested starting point the coding agent may ask for (the ``scaffold`` tool): a
nanoGPT-style template whose ``# REPRO-CONFIG-BEGIN/END`` block is filled from the plan. It is
never the only code that can exist: the agent edits it, or writes its own. Several methods share a template
(a *family*): full / head / LoRA / QLoRA share ``classify_train.py``; causal-LM SFT and DPO
have their own. What a new recipe overrides:

* ``name``          registry key (``Experiment.recipe`` hints at one)
* ``family``        which training script it runs in (one script per family in the submission)
* ``template``      file under ``agent/recipes/templates``
* ``config(plan)``  the CONFIG block (every value is echoed into metrics.json)
* ``deviations(plan, env)`` optional: substitutions this recipe must make here (e.g. QLoRA on CPU)
"""
from __future__ import annotations

import pprint
import re
from abc import ABC, abstractmethod
from importlib import resources

from agent.plan import METHOD_LABELS, Deviation, Plan

_REGISTRY: dict[str, "Recipe"] = {}
_CONFIG_RE = re.compile(r"# REPRO-CONFIG-BEGIN.*?\n(.*?)# REPRO-CONFIG-END", re.S)


def template_text(name: str) -> str:
    return resources.files("agent.recipes").joinpath(f"templates/{name}").read_text()


def template_config(name: str) -> dict:
    """A template's own CONFIG block (its tested defaults), read without running the template."""
    import ast

    m = _CONFIG_RE.search(template_text(name))
    if m is None:
        raise ValueError(f"template {name} has no REPRO-CONFIG block")
    return ast.literal_eval(m.group(1).split("=", 1)[1].strip())


def fill_config(source: str, config: dict) -> str:
    """Replace the template's CONFIG block; everything else stays the tested code."""
    block = "CONFIG = " + pprint.pformat(config, sort_dicts=False, width=100) + "\n"
    if not _CONFIG_RE.search(source):
        raise ValueError("template has no REPRO-CONFIG block")
    return _CONFIG_RE.sub(lambda m: m.group(0).replace(m.group(1), block), source, count=1)


class Recipe(ABC):
    #: registry name (what Experiment.recipe names)
    name: str = ""
    #: recipes of one family share a training script
    family: str = ""
    #: template file under agent/recipes/templates
    template: str = ""
    #: what the metric file's headline metric is, and whether higher is better
    metric: str = "accuracy"
    higher_is_better: bool = True

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.name, self.name)

    @abstractmethod
    def config(self, plan: Plan) -> dict:
        """The CONFIG block for this family's script, filled from the plan."""

    def deviations(self, plan: Plan, env: dict | None = None) -> list[Deviation]:
        """Substitutions this recipe makes in this environment (``env``: {"cuda": bool, ...})."""
        return []

    def script(self, plan: Plan) -> str:
        """The training script's file name in the submission (train.py when only one family)."""
        families = {get_recipe(e.recipe).family for e in plan.experiments if e.recipe}
        return "train.py" if len(families) <= 1 else f"train_{self.family.replace('-', '_')}.py"

    def command(self, plan: Plan, *, out: str) -> str:
        return f'python {self.script(plan)} --method {self.name} --out "{out}"'

    def render_script(self, plan: Plan) -> str:
        return fill_config(template_text(self.template), self.config(plan))


def register(recipe: Recipe) -> Recipe:
    if not recipe.name or not recipe.family or not recipe.template:
        raise ValueError(f"recipe {type(recipe).__name__} must set name, family and template")
    _REGISTRY[recipe.name] = recipe
    return recipe


def registry() -> dict[str, Recipe]:
    return dict(_REGISTRY)


def get_recipe(name: str) -> Recipe:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


REPRODUCE_HEAD = (
    "#!/usr/bin/env bash\n"
    "# Re-runs every experiment from scratch, in order; each writes results/<experiment>/metrics.json.\n"
    "# REPRO_SEED seeds every run; REPRO_SMOKE=1 makes a quick run of every code path (tiny data).\n"
    "set -euo pipefail\n"
    'cd "$(dirname "$0")"\n'
    "rm -rf results\n"
)


def scaffold_files(plan: Plan, experiment_id: str, recipe_name: str, current: dict[str, str]) -> dict[str, str]:
    """The files to write so the workspace runs ``recipe_name`` for one experiment: its family's
    script (unless already there), reproduce.sh with the experiment's line added, README.md."""
    exp = plan.experiment(experiment_id)
    if exp is None:
        raise KeyError(f"no experiment {experiment_id!r} in the plan; the ids are {[e.id for e in plan.experiments]}")
    r = get_recipe(recipe_name)
    files: dict[str, str] = {}
    script = r.script(plan)
    if script not in current:
        files[script] = r.render_script(plan)
    line = r.command(plan, out=f"results/{exp.id}")
    repro = current.get("reproduce.sh") or REPRODUCE_HEAD
    if line not in repro:
        repro = repro.rstrip("\n") + "\n" + line + "\n"
    files["reproduce.sh"] = repro
    readme = current.get("README.md") or _readme_head(plan)
    entry = f"- `{exp.id}`: {exp.name} — recipe `{r.name}` ({r.label}), `{script}`, metric {r.metric}"
    if exp.reported_after:
        entry += f" (paper: {exp.reported_after.text}, {exp.reported_after.table})"
    if f"- `{exp.id}`:" not in readme:
        readme = readme.rstrip("\n") + "\n" + entry + "\n"
    files["README.md"] = readme
    return files


def _readme_head(plan: Plan) -> str:
    lines = [f"# Replication: {plan.task}", "",
             f"Model: `{plan.model}` (paper: {plan.paper_model}); data: `{plan.dataset}` (paper: {plan.paper_dataset}); "
             f"seed {plan.hyper.seed} (REPRO_SEED overrides); {plan.hyper.epochs} epoch(s).", "",
             "Run everything: `bash reproduce.sh` (a quick check: `REPRO_SMOKE=1 bash reproduce.sh`).", ""]
    if plan.deviations:
        lines += ["## Deviations from the paper", ""]
        lines += [f"- {d.what}: paper {d.paper} → ours {d.ours} ({d.reason})" for d in plan.deviations]
        lines.append("")
    lines += ["## Experiments", ""]
    return "\n".join(lines) + "\n"
