"""JSON schemas of the planning stages (what a constrained model may answer)."""
from __future__ import annotations

METRICS = ("accuracy", "error rate", "f1", "perplexity", "reward accuracy", "mean reward", "bleu", "other")
#: a capable model names the metric as the paper's column does (grounding.METRIC_WORDS' names)
METRICS_CAPABLE = ("accuracy", "error", "f1", "perplexity", "mean reward", "reward accuracy", "win rate", "BLEU",
                   "ROUGE", "ROUGE-L", "METEOR", "NIST", "TER", "CIDEr", "MCC", "Pearson", "Spearman", "exact match",
                   "precision", "recall", "score", "other")


def claims_schema(ids: list[str], recipes: list[str], max_experiments: int = 6, max_results: int = 3,
                  with_claims: bool = False) -> dict:
    """Stage 1: the paper's experiments, free-form, each with the result ids that support it; with
    ``with_claims`` (a capable model) the paper's claims too, each with its kind, the experiments it
    compares (by name) and the result ids that support it."""
    result = {"type": "string", "enum": ids + ["none"]}
    props = {"experiments": {"type": "array", "minItems": 1, "maxItems": max_experiments, "items": {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 60},
                       "method": {"type": "string", "maxLength": 160},
                       "recipe": {"type": "string", "enum": recipes + ["none"]},
                       "claim": {"type": "string", "maxLength": 160},
                       "results": {"type": "array", "items": result, "minItems": 1, "maxItems": max_results}},
        "required": ["name", "method", "recipe", "claim", "results"], "additionalProperties": False}}}
    if with_claims:
        props["claims"] = {"type": "array", "maxItems": 8, "items": {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 300},
                           "kind": {"type": "string", "enum": ["absolute", "comparative", "trend"]},
                           "experiments": {"type": "array", "items": {"type": "string", "maxLength": 60},
                                           "minItems": 1, "maxItems": 6},
                           "relation": {"type": "string", "enum": ["greater", "within", "increasing", "decreasing",
                                                                    "none"]},
                           "margin": {"type": "number"},
                           "results": {"type": "array", "items": result, "minItems": 1, "maxItems": 6}},
            "required": ["text", "kind", "experiments", "relation", "margin", "results"],
            "additionalProperties": False}}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def settings_schema(experiment_ids: list[str], ids: list[str], metrics: tuple[str, ...] = METRICS,
                    max_targets: int = 3, min_epochs: int = 1) -> dict:
    """Stage 2: shared settings and, per experiment (E1..En), hyper-parameters, metrics, targets.
    ``min_epochs`` 0 lets a capable model say an experiment is only evaluated (never trained)."""
    target = {"type": "string", "enum": ids} if ids else {"type": "string", "maxLength": 0}
    return {
        "type": "object",
        "properties": {
            "task": {"type": "string", "maxLength": 80},
            "base_model": {"type": "string", "maxLength": 60},
            "dataset": {"type": "string", "maxLength": 60},
            "experiments": {"type": "array", "minItems": 1, "maxItems": len(experiment_ids), "items": {
                "type": "object",
                "properties": {"experiment": {"type": "string", "enum": experiment_ids},
                               "epochs": {"type": "integer", "minimum": min_epochs, "maximum": 100},
                               "batch_size": {"type": "integer", "minimum": 1, "maximum": 4096},
                               "learning_rate": {"type": "number"},
                               "metrics": {"type": "array", "items": {"type": "string", "enum": list(metrics)},
                                           "minItems": 1, "maxItems": 2},
                               "targets": {"type": "array", "items": target, "maxItems": max_targets}},
                "required": ["experiment", "epochs", "batch_size", "learning_rate", "metrics", "targets"],
                "additionalProperties": False}},
        },
        "required": ["task", "base_model", "dataset", "experiments"], "additionalProperties": False,
    }


def items(obj: dict, key: str) -> list[dict] | None:
    found = obj.get(key)
    if not isinstance(found, list) or not found or not all(isinstance(i, dict) for i in found):
        return None
    return found
