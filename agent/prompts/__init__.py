"""Jinja2 prompt templates. StrictUndefined: a missing variable is an error, never silent."""
from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

_env = Environment(loader=PackageLoader("agent", "prompts"), undefined=StrictUndefined, autoescape=False,
                   keep_trailing_newline=True)


def render(name: str, **values) -> str:
    # Paper text may contain braces and LaTeX ({criterion}, \frac{a}{b}); Jinja only
    # interprets its own delimiters in the template, never in the values substituted.
    return _env.get_template(name).render(**values)
