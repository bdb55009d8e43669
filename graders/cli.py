"""``repro rubric ...`` and ``repro judge-eval``.

The main CLI (agent/cli.py) mounts these: ``app.add_typer(rubric_app, name="rubric")`` and
``app.command("judge-eval")(judge_eval_cmd)``. graders cannot import agent, so the model used
by ``rubric generate`` comes from a factory the main CLI registers with ``set_model_factory``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.tree import Tree

from graders.aggregate import aggregate, regrade
from graders.rubric import duplicate_ids, GradedTaskNode, RubricError, TaskNode, load_graded, load_rubric, save_rubric

rubric_app = typer.Typer(help="Check, score, show and generate PaperBench rubrics.", no_args_is_help=True)
_model_factory: Callable[..., Any] | None = None


def set_model_factory(factory: Callable[..., Any] | None) -> None:
    """Register how ``rubric generate`` and ``judge-eval --model`` get a model: factory(model=None,
    base_url=None), called lazily, only by those commands (None/None: the configured default)."""
    global _model_factory
    _model_factory = factory


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load_any(path: Path) -> TaskNode:
    """A graded tree if the file has scores, else a rubric. Upstream rubrics reuse some ids."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RubricError(f"{path}: {exc}") from None
    if isinstance(data, dict) and "score" in data:
        return load_graded(data, allow_duplicate_ids=True)
    return load_rubric(data, allow_duplicate_ids=True)


@rubric_app.command("check")
def check(file: Path = typer.Argument(..., help="rubric.json"),
          strict: bool = typer.Option(False, "--strict", help="refuse reused ids (for rubrics you write)")) -> None:
    """Validate a rubric: exit 0 when valid, 2 with the reason on stderr when not."""
    try:
        root = load_rubric(file, allow_duplicate_ids=not strict)
    except RubricError as exc:
        _fail(f"invalid rubric: {exc}")
    leaves = root.leaves()
    typer.echo(f"ok: {file} ({sum(1 for _ in root.walk())} nodes, {len(leaves)} leaves)")
    reused = duplicate_ids(root)
    if reused:  # upstream PaperBench rubrics do this; verdicts are keyed by position, so it grades right
        typer.echo(f"warning: {len(reused)} id(s) are used by more than one node (e.g. {reused[0]}); the judge keys "
                   "verdicts by each node's path, so they grade correctly, but a grade override names a leaf by id "
                   "and applies to every copy", err=True)


@rubric_app.command("score")
def score(graded: Path = typer.Argument(..., help="a graded tree (PaperBench expected_result.json format)"),
          as_json: bool = typer.Option(False, "--json", help="print {score, coverage, leaves, nodes} as JSON")) -> None:
    """Recompute the score of a graded tree from its leaves."""
    try:
        tree = load_graded(graded, allow_duplicate_ids=True)
    except RubricError as exc:
        _fail(f"invalid graded tree: {exc}")
    agg = aggregate(tree)
    if as_json:
        typer.echo(json.dumps({"score": agg.score, "coverage": agg.coverage, "leaves": agg.leaves,
                               "nodes": agg.nodes}))
        return
    typer.echo(f"score {agg.score:.4f}  coverage {agg.coverage:.4f}  leaves {agg.leaves}  nodes {agg.nodes}"
               f"  invalid {agg.invalid_leaves}")
    for cat, s in sorted(agg.by_category.items()):
        typer.echo(f"  {cat:<18} {s:.4f}  (weight {agg.category_weight[cat]:.3f})")


def render_tree(root: TaskNode, max_depth: int | None = None) -> Tree:
    graded = isinstance(root, GradedTaskNode)
    if graded:
        root = regrade(root)

    def label(n: TaskNode) -> str:
        from rich.markup import escape
        req = escape(n.requirements if len(n.requirements) <= 110 else n.requirements[:107] + "...")
        parts = [f"[dim]w={n.weight}[/dim]"]
        if n.task_category:
            parts.append(f"[cyan]{n.task_category}[/cyan]")
        if isinstance(n, GradedTaskNode):
            colour = "red" if not n.valid_score else "green" if n.score >= 0.5 else "yellow"
            parts.append(f"[{colour}]{n.score:.2f}{'' if n.valid_score else ' invalid'}[/{colour}]")
        return f"{req}  " + " ".join(parts)

    tree = Tree(label(root))

    def add(parent: Tree, node: TaskNode, depth: int) -> None:
        for c in node.sub_tasks:
            branch = parent.add(label(c))
            if max_depth is None or depth + 1 < max_depth:
                add(branch, c, depth + 1)
            elif c.sub_tasks:
                branch.add(f"[dim]... {sum(1 for _ in c.walk()) - 1} more nodes[/dim]")

    add(tree, root, 0)
    return tree


@rubric_app.command("show")
def show(file: Path = typer.Argument(..., help="rubric.json or a graded tree"),
         depth: Optional[int] = typer.Option(None, help="only show this many levels")) -> None:
    """Print the tree readably (weights, categories, scores when graded)."""
    try:
        root = _load_any(file)
    except RubricError as exc:
        _fail(f"invalid rubric: {exc}")
    Console(soft_wrap=False).print(render_tree(root, depth))


@rubric_app.command("generate")
def generate(paper_pdf: Path = typer.Argument(..., help="the paper's PDF"),
             output: Optional[Path] = typer.Option(None, "-o", "--output", help="write rubric.json here"),
             max_leaves: int = typer.Option(40, help="upper bound on the number of leaves")) -> None:
    """Build a PaperBench-style rubric for a paper (deterministic scaffold + the configured model)."""
    from graders.generate import build_rubric
    from graders.rubric import dumps

    try:
        from papers.ingest import load_paper
    except ImportError as exc:
        _fail(f"paper ingestion is not available ({exc})")
    if _model_factory is None:
        _fail("no model is configured for rubric generation (the main CLI sets one with set_model_factory)")
    try:
        paper = load_paper(paper_pdf)
    except Exception as exc:  # papers raises its own errors with a clear message
        _fail(f"cannot read {paper_pdf}: {exc}")
    out = build_rubric(paper, _model_factory(), max_leaves=max_leaves)
    for w in out.warnings:
        typer.echo(f"warning: {w}", err=True)
    if output:
        save_rubric(out.rubric, output)
        typer.echo(f"wrote {output} ({len(out.rubric.leaves())} leaves)")
    else:
        sys.stdout.write(dumps(out.rubric) + "\n")


def judge_eval_cmd(
    predictions: Optional[Path] = typer.Option(None, help="directory of graded trees: <paper>/graded.json or <paper>.json"),
    baseline: Optional[str] = typer.Option(None, help="grade with a baseline judge instead: oracle, random, ones, zeros"),
    data: Optional[Path] = typer.Option(None, help="PaperBench judge_eval directory (human-graded trees)"),
    seed: int = typer.Option(0, help="seed of the random baseline"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    model: Optional[str] = typer.Option(None, "--model", help="measure this judge model on the labelled mutation "
                                        "set (papers/judge-eval) and store the result for reports ('embedded': "
                                        "the embedded SmolLM2)"),
    base_url: Optional[str] = typer.Option(None, help="the judge model's OpenAI-protocol endpoint"),
    samples: int = typer.Option(1, help="grade each group k times and take the majority"),
    cases: Optional[str] = typer.Option(None, help="comma-separated case names (a subset of the set)"),
) -> None:
    """Macro-F1 of a judge's leaf grades: a model on the labelled mutation set (--model), or grades
    already made against PaperBench's human-graded trees (--predictions / --baseline)."""
    from graders import judge_eval as je

    if model is not None:
        _measure_model(model, base_url, samples, cases, as_json)
        return

    data_dir = data or je.default_data_dir()
    cases = je.load_cases(data_dir)
    if not cases:
        _fail(f"no */expected_result.json under {data_dir}")
    if (predictions is None) == (baseline is None):
        _fail("give exactly one of --predictions or --baseline")
    results = []
    for name, expected in cases.items():
        if baseline is not None:
            makers = {"oracle": je.oracle_judge, "random": lambda e: je.random_judge(e, seed),
                      "ones": lambda e: je.constant_judge(e, 1), "zeros": lambda e: je.constant_judge(e, 0)}
            if baseline not in makers:
                _fail(f"unknown baseline {baseline!r}; choose one of {', '.join(makers)}")
            predicted = makers[baseline](expected)
        else:
            path = next((p for p in (predictions / name / "graded.json", predictions / f"{name}.json") if p.exists()),
                        None)
            if path is None:
                typer.echo(f"warning: no prediction for {name}; skipped", err=True)
                continue
            predicted = load_graded(path, allow_duplicate_ids=True)
        results.append(je.evaluate(expected, predicted, name))
    if not results:
        _fail("no case could be evaluated")
    mean_f1 = sum(r.f1 for r in results) / len(results)
    if as_json:
        typer.echo(json.dumps({"mean_f1": mean_f1, "cases": [r.__dict__ for r in results]}))
        return
    for r in results:
        typer.echo(f"{r.name:<48} leaves {r.leaves:>5}  F1 {r.f1:.3f}  acc {r.accuracy:.3f}  invalid {r.invalid}")
    typer.echo(f"{'mean':<48} {'':>12}  F1 {mean_f1:.3f}")


def _measure_model(model: str, base_url: str | None, samples: int, names: str | None, as_json: bool) -> None:
    from graders import judge_eval as je
    from graders.judge import JudgeConfig
    from graders.mutations import load_cases

    if _model_factory is None:
        _fail("no model factory is registered (the main CLI sets one)")
    cases = load_cases()
    if names:
        want = set(names.split(","))
        cases = [c for c in cases if c.name in want]
        if not cases:
            _fail(f"no case named {names}")
    judge = _model_factory(None if model == "embedded" else model, base_url)
    typer.echo(f"measuring {judge.name} on {len(cases)} labelled cases (samples {samples}) ...", err=True)
    result = je.measure_on_mutations(lambda case: judge, cases, samples=samples,
                                     config=JudgeConfig.for_context(getattr(judge, "context_tokens", None)))
    path = je.store(judge.name + (f"#samples={samples}" if samples > 1 else ""), result)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for c in result["cases"]:
        typer.echo(f"{c['case']:<32} leaves {c['leaves']:>3}  F1 {c['f1']:.3f}  wrong {c['wrong']}")
    typer.echo(f"{judge.name}: macro-F1 {result['f1']:.3f} on {result['n']} labelled leaves "
               f"({result['rule_decided']} decided by rules, not the model; {result['invalid']} invalid); "
               f"{result['usage']['calls']} calls, {result['usage']['prompt_tokens']} prompt tokens; stored in {path}")
