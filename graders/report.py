"""The graded replication report: one data dict -> report.json, report.md, report.html.

The agent assembles the data (it knows the plan); this module finishes it from the run
directory (person's overrides re-aggregated, evidence links, curves) and renders it, so the
CLI, the web UI and a re-render after an override all show the same numbers. HTML is
self-contained (no CDN): curves are embedded PNGs, the rubric tree is plain <details>.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from graders.aggregate import aggregate, regrade
from graders.citations import evidence_files, json_key_line, leaf_evidence
from graders.files import write_atomic
from graders.overrides import apply_overrides, latest_by_leaf, load_overrides
from graders.rubric import load_graded

_env = Environment(loader=PackageLoader("graders", "templates"), autoescape=select_autoescape(["html", "j2"]))
_env.filters["pct"] = lambda v: "—" if v is None else f"{v:.0%}"


class ReportError(RuntimeError):
    """A report cannot be (re)built; the message says which file is missing or broken."""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


class Links:
    """Where the report's links point. The standalone file links relative to the run dir;
    the web UI passes its own (code browser with the lines highlighted, PDF at a page)."""

    def __init__(self, data: dict):
        self._paper = (data.get("paper") or {}).get("link") or ""

    def file(self, rel: str, start: int | None = None, end: int | None = None) -> str:
        return rel

    def paper(self, page: int | None = None) -> str:
        return f"{self._paper}#page={page}" if page else self._paper

    trajectory = None  # the web UI links its step-by-step trajectory view here


# ---------------------------------------------------------------- finishing the data
def curves_data(results: dict[str, dict]) -> dict:
    """Per-experiment loss curve and before/after headline metric (graders.contract results)."""
    loss, metric = {}, {}
    for exp, r in results.items():
        pts = (r.get("curves") or {}).get("loss") or []
        if pts:
            loss[exp] = [[p[0], p[1]] for p in pts]
        name = next(iter(r.get("metrics") or {}), None)
        if name is not None:
            metric[exp] = {"before": (r.get("before") or {}).get(name), "after": r["metrics"][name]}
    return {"loss": loss, "metric": metric}


def curves_png(curves: dict) -> str | None:
    """Loss curves (or, when no loss was logged, before/after bars) as a base64 PNG."""
    loss, metric = curves.get("loss") or {}, curves.get("metric") or {}
    if not loss and not metric:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    if loss:
        for method, pts in loss.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=method)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    else:
        names = list(metric)
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [metric[n]["before"] or 0 for n in names], 0.4, label="before")
        ax.bar([x + 0.2 for x in xs], [metric[n]["after"] or 0 for n in names], 0.4, label="after")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("metric")
        ax.set_title("before / after fine-tuning (no per-step loss was logged)", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _judge_quality(g: dict) -> str:
    q = g.get("judge_quality") or {}
    if q.get("f1") is None:
        return f"judge {g.get('judge_model', '—')}: accuracy never measured (repro judge-eval)"
    low = " — LOW CONFIDENCE" if q.get("low_confidence") else ""
    return f"judge {g.get('judge_model', '—')}: macro-F1 {q['f1']:.2f} on {q['n']} labelled leaves ({q['set']}){low}"


def _verdict(data: dict) -> str:
    g, models = data.get("grade"), data.get("models") or {}
    if not g:
        return data.get("verdict") or f"Not graded — run {data.get('status')}"
    parts = g.get("parts") or {}
    checked, judged = parts.get("checked") or {}, parts.get("judged") or {}
    results, facts = parts.get("checked_results"), parts.get("checked_facts")
    if results is not None and facts is not None and checked.get("leaves"):
        # what the numbers say leads; what the run did (wrote its numbers, set its settings) follows
        claims = [c.get("verdict") for c in data.get("paper_claims") or []]
        tally = ", ".join(f"{claims.count(v)} {v}" for v in dict.fromkeys(claims))
        unsure = f", {results['inconclusive']} inconclusive" if results.get("inconclusive") else ""
        text = ((f"Claims: {tally}. " if claims else "")
                + (f"Result checks: {results['passed']}/{results['leaves']} pass{unsure}. " if results["leaves"] else
                   "No result check. ")
                + (f"Facts of the run (it wrote its numbers, set its settings): {facts['passed']}/{facts['leaves']} "
                   "hold. " if facts["leaves"] else "")
                + f"Judged part: {judged.get('rate') if judged.get('rate') is not None else 0:.2f} over "
                  f"{judged.get('leaves', 0)} leaves ({_judge_quality(g)}). "
                  f"Whole-rubric score {g['score']:.2f} (coverage {g['coverage']:.0%}), agent {models.get('agent', '—')}")
    elif checked.get("leaves"):
        # the checked part leads: arithmetic on the reproduction's files, not a model's opinion
        text = (f"Checked by arithmetic: {checked['passed']}/{checked['leaves']} checked leaves pass. "
                f"Judged part: {judged.get('rate') if judged.get('rate') is not None else 0:.2f} over "
                f"{judged.get('leaves', 0)} leaves ({_judge_quality(g)}). "
                f"Whole-rubric score {g['score']:.2f} (coverage {g['coverage']:.0%}), agent {models.get('agent', '—')}")
    else:
        text = (f"Replication score {g['score']:.2f} (coverage {g['coverage']:.0%}) — "
                f"agent {models.get('agent', '—')}; {_judge_quality(g)}")
    n = len(g.get("overridden_leaves") or [])
    if n:
        text += f" · {n} leaf grade{'s' if n > 1 else ''} overridden by a person (judge alone: {g['judge_score']:.2f})"
    return text


def _regrade_with_overrides(data: dict, run_dir: Path) -> None:
    graded = run_dir / "graded.json"
    if not data.get("grade") or not graded.exists():
        return
    judge_tree = load_graded(graded, allow_duplicate_ids=True)
    in_force = latest_by_leaf(load_overrides(run_dir))
    tree = regrade(apply_overrides(judge_tree, in_force))
    agg, judge_agg = aggregate(tree), aggregate(judge_tree)
    data["grade"] = {**data["grade"], "score": agg.score, "coverage": agg.coverage, "leaves": agg.leaves,
                     "invalid_leaves": agg.invalid_leaves, "by_category": agg.by_category,
                     "judge_score": judge_agg.score, "judge_coverage": judge_agg.coverage,
                     "overridden_leaves": sorted(in_force)}
    data["graded_tree"] = tree.to_dict()
    data["overrides"] = load_overrides(run_dir)


def finalize(data: dict, run_dir: Path) -> dict:
    """Complete ``data`` from the run directory. Idempotent: safe to call on a loaded report.json."""
    run_dir = Path(run_dir)
    data = dict(data)
    _regrade_with_overrides(data, run_dir)
    files = evidence_files(run_dir)
    if data.get("graded_tree"):
        stack, evidence = [data["graded_tree"]], {}
        while stack:
            n = stack.pop()
            stack.extend(n.get("sub_tasks") or [])
            if not n.get("sub_tasks"):
                evidence[n["id"]] = leaf_evidence(n, files)
        data["evidence"] = evidence
    for row in data.get("comparison") or []:
        rep = row.get("reproduced")
        if rep and rep.get("file") and rep.get("key"):
            rep["line"] = json_key_line(run_dir / rep["file"], rep["key"])
    full = (data.get("reproduction") or {}).get("results_full")
    if not full and not data.get("curves") and (run_dir / "reproduction.json").exists():
        full = json.loads((run_dir / "reproduction.json").read_text()).get("results")
    if full:
        data["curves"] = curves_data(full)
    data["ungraded"] = _ungraded(data.get("graded_tree"))
    if not data.get("grade"):
        data["not_graded"] = _not_graded(data)
    data["verdict"] = _verdict(data)
    return data


def _ungraded(tree: dict | None) -> list[dict]:
    """Every rubric leaf without a usable grade, with why (the judge's failure, as it recorded it)."""
    out, stack = [], [tree] if tree else []
    while stack:
        n = stack.pop()
        stack.extend(reversed(n.get("sub_tasks") or []))
        if not n.get("sub_tasks") and not n.get("valid_score"):
            out.append({"id": n.get("id"), "requirements": n.get("requirements", ""),
                        "why": n.get("explanation") or "the judge gave no usable verdict and recorded no reason"})
    return out


def _not_graded(data: dict) -> str:
    """Why a report has no grade at all."""
    status = data.get("status") or "unknown"
    if data.get("stop_reason"):
        return f"the run {status} before grading: {data['stop_reason']}"
    return f"the run {status} before grading" if status != "done" else "grading did not run (no grade was recorded)"


# ---------------------------------------------------------------- rendering
def tree_rows(node: dict, depth: int = 0) -> list[dict]:
    rows = [{"depth": depth, "node": node}]
    for child in node.get("sub_tasks", []):
        rows += tree_rows(child, depth + 1)
    return rows


def render_html(data: dict, *, links: Any = None, override_url: str | None = None, standalone: bool = True,
                curves: str | None = None, form_fields: dict[str, str] | None = None) -> str:
    """The report page (``standalone``) or the fragment the web UI embeds (with override forms, each
    carrying ``form_fields`` as hidden inputs: the web app's session token)."""
    overrides = latest_by_leaf(data.get("overrides") or [])
    return _env.get_template("report.html.j2").render(
        d=data, fmt=_fmt, links=links or Links(data), override_url=override_url, standalone=standalone,
        form_fields=form_fields or {},
        overrides=overrides, evidence=data.get("evidence") or {},
        low_confidence=not ((data.get("grade") or {}).get("judge_quality") or {}).get("f1")
        or bool(((data.get("grade") or {}).get("judge_quality") or {}).get("low_confidence")),
        curves=curves if curves is not None else curves_png(data.get("curves") or {}),
        css=_env.loader.get_source(_env, "report.css")[0],
    )


def render_markdown(data: dict) -> str:
    g = data.get("grade") or {}
    paper = data.get("paper") or {}
    lines = [f"# Replication report: {paper.get('title', '?')}", "", f"Paper: [{paper.get('source', 'PDF')}]({paper.get('link', '')})",
             "", f"**{data['verdict']}**", ""]
    if data.get("stop_reason"):
        lines += [f"> Run {data['status']}: {data['stop_reason']}", ""]
    lines += [f"> {w}" for w in data.get("warnings") or []]
    lines += ["", "## Paper vs reproduced", "", "| experiment | metric | paper | reproduced | Δ | paper source | reproduced from |",
              "|---|---|---|---|---|---|---|"]
    for c in data.get("comparison", []):
        rep, got = c.get("reported") or {}, c.get("reproduced") or {}
        prov = f"{rep.get('table')}, p. {rep.get('page')}, row '{rep.get('row')}'" if rep else "not reported"
        src = (f"`{got['file']}:{got.get('line') or ''}` ({got.get('key')}"
               f"{', mapped by its reproduces' if got.get('joined') == 'reproduces' else ''})" if got
               else "not reproduced" + (f": {_cell(c['why'])}" if c.get("why") else ""))
        if c.get("claim"):
            src += f"; claim {c['claim']['id']}"
        delta = "not comparable" if c.get("comparable") is False and got else _fmt(c.get("delta"), 2)
        label = c["experiment"] + (f" ({c['approximation']})" if c.get("approximation") else "")
        lines.append(f"| {label} | {c['metric']} | {rep.get('text', '—')} | {_fmt(got.get('display'), 2)} | "
                     f"{delta} | {prov} | {src} |")
    if any(c.get("comparable") is False for c in data.get("comparison", [])):
        why = next(c["not_comparable"] for c in data["comparison"] if c.get("comparable") is False)
        lines += ["", f"Not comparable: {why}. Comparisons between our own numbers (checks, claims) still count."]
    lines += ["", "## Before and after fine-tuning", "", "| method | metric | before | after | trainable / total params |",
              "|---|---|---|---|---|"]
    for b in data.get("before_after", []):
        lines.append(f"| {b['method']} | {b.get('metric') or '—'} | {_fmt(b['before'])} | {_fmt(b['after'])} | "
                     f"{b.get('trainable_params') or '—'} / {b.get('total_params') or '—'} |")
    for b in [b for b in data.get("before_after", []) if b.get("samples")][:4]:
        lines += ["", f"Sample generations, {b['method']}:", ""]
        for when in ("before", "after"):
            lines += [f"- {when}: {' / '.join(str(t)[:160] for t in (b['samples'].get(when) or [])[:3])}"]
    if data.get("claims"):
        lines += ["", f"## Claims across seeds (REPRO_SEED = {', '.join(map(str, data.get('seeds') or []))})", "",
                  "| claim | mean ± 95% | seeds | verdict | why |", "|---|---|---|---|---|"]
        for c in data["claims"]:
            interval = (f"{_fmt(c.get('mean'), 2)}" + (f" ± {_fmt(c.get('half'), 2)}" if c.get("half") is not None else "")
                        if c.get("n") else "—")
            lines.append(f"| {c['claim'][:90]} | {interval} | {c.get('n', 0)} | **{c['verdict']}** | {c['why']} |")
    if data.get("paper_claims"):
        lines += ["", "## The paper's claims, tested on the reproduction's numbers", "",
                  "| id | kind | claim | paper | ours | verdict | arithmetic |", "|---|---|---|---|---|---|---|"]
        for c in data["paper_claims"]:
            kind = c["kind"] + (f": {' vs '.join(c['experiments'])} {c['relation']}" if c.get("relation") else "")
            paper = "; ".join(f"{t['text']} ({t['table']}, p. {t['page']})" for t in c.get("cells") or []) or "—"
            ours = "; ".join(f"{e}: {', '.join(_fmt(v, 2) for v in vals) or '—'}" for e, vals in c["numbers"].items())
            lines.append(f"| {c['id']} | {kind} | {_cell(c['claim'])} | {_cell(paper)} | {ours} | **{c['verdict']}** | "
                         f"{_cell(c['why'])} |")
    checks = (data.get("grade") or {}).get("checks") or []
    if checks:
        lines += ["", "## Checked results", "", "| criterion | reproduced | paper | arithmetic | verdict |", "|---|---|---|---|---|"]
        for c in checks:
            paper = c.get("paper") or {}
            lines.append(f"| {c['requirements'][:90]} | {_fmt(c.get('reproduced'), 2)} | "
                         f"{paper.get('text') or paper.get('value') or '—'} | `{c['arithmetic']}` | "
                         f"{'pass' if c['passed'] else 'inconclusive' if c.get('inconclusive') else 'fail'} |")
    not_run = (data.get("grade") or {}).get("checks_not_run") or []
    if not_run:
        lines += ["", "Checks not run (their leaves were decided before):", ""]
        lines += [f"- {c['requirements'][:90]}: {c['why']}" for c in not_run]
    lines += ["", "## Experiments of the paper", ""]
    lines += [f"- `{e['id']}` {e['name']}: **{e['status']}** — {e['reason']}" for e in data.get("experiments") or []]
    a = data.get("agent")
    if a:
        lines += ["", "## The coding agent", "", f"{a['turns']} turns, {a['tool_calls']} tool calls, {a['malformed']} "
                  f"malformed (re-asked), {a['nudges']} nudges; exit **{a.get('exit')}** {a.get('exit_detail') or ''}"
                  + (f"; {a['decided']}" if a.get("decided") else ""), ""]
        lines += [f"- `{f['path']}`: {f['origin']}" for f in a["files"]]
        lines += ["", "| turn | tool | arguments | result | options (1 = the guide decided) |", "|---|---|---|---|---|"]
        for st in a["steps"]:
            res = (st["result"] or "").replace("\n", " ").replace("|", "\\|")[:160]
            lines.append(f"| {st['turn']} | {st['tool'] or '—'} | `{(st['args'] or '').replace('|', '/')[:80]}` | {res} | "
                         f"{st.get('options') or '—'} |")
    lines += _assets_md(data.get("assets") or {})
    lines += ["", "## Deviations from the paper", ""]
    lines += [f"- **{d['what']}**: paper {d['paper']} → ours {d['ours']} — {d['reason']}" for d in data.get("deviations") or []]
    lines += [] if data.get("deviations") else ["None recorded."]
    lines += ["", "## Rubric", "", f"Score {_fmt(g.get('score'))}, coverage {_fmt(g.get('coverage'))}, "
              f"judge `{g.get('judge_model', '—')}`, rubric {g.get('rubric_source', '—')}", ""]
    if data.get("not_graded"):
        lines += [f"Not graded: {data['not_graded']}."]
    if data.get("ungraded"):
        lines += [f"{len(data['ungraded'])} leaves without a usable grade (each counts as 0):", ""]
        lines += [f"- {u['requirements'][:120]}: {u['why'][:300]}" for u in data["ungraded"]]
        lines += [""]
    overrides = latest_by_leaf(data.get("overrides") or [])
    evidence = data.get("evidence") or {}
    for row in tree_rows(data["graded_tree"]) if data.get("graded_tree") else []:
        n, pad = row["node"], "  " * row["depth"]
        leaf = not n.get("sub_tasks")
        mark = "" if not leaf else (" ✔" if n.get("score") == 1 else (" ✘" if n.get("valid_score") else " (unscored)"))
        lines.append(f"{pad}- [{_fmt(n.get('score'), 2)}]{mark} {n.get('requirements', '')[:200]}")
        if leaf:
            o = overrides.get(n["id"])
            if o:
                lines.append(f"{pad}  - *overridden by {o['who']} at {o['at']}* (judge said {_fmt(o['judge']['score'], 0)}): {o['reason']}")
            lines.append(f"{pad}  - {n.get('explanation', '')[:300]}")
            for e in evidence.get(n["id"], []):
                lines.append(f"{pad}  - {e['kind']}: `{e['file']}{':' + str(e['start']) if e['start'] else ''}"
                             f"{'-' + str(e['end']) if e['end'] and e['end'] != e['start'] else ''}`")
    c = data.get("cost", {})
    lines += ["", "## Cost", "", f"agent tokens {c.get('agent_tokens', 0)}, judge tokens {c.get('judge_tokens', 0)}, "
              f"dollars {_fmt(c.get('dollars'), 4)}, wall {_fmt(c.get('wall_s'), 0)} s, "
              f"sandbox {_fmt(c.get('sandbox_s'), 0)} s (reproduction {_fmt(c.get('reproduce_s'), 0)} s)", "",
              "## Environment", ""]
    lines += [f"- {k}: {v}" for k, v in (data.get("environment") or {}).items()]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _size(n: int | None) -> str:
    n = n or 0
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _assets_md(a: dict) -> list[str]:
    if not a:
        return []
    out = ["", "## Assets", "", f"Mode: {a.get('mode')} ({a.get('mode_reason')}). The sandboxes had no network; "
           "the host fetched these into a read-only cache.", "",
           "| kind | asset | role | source | revision | licence | size | sha256 |", "|---|---|---|---|---|---|---|---|"]
    for r in a.get("assets") or []:
        role = f"stands in for {r['stands_in_for']}" if r.get("stands_in_for") else "the paper's own / asked for"
        out.append(f"| {r['kind']} | `{r['id']}`{' (' + r['config'] + ')' if r.get('config') else ''} | {role} | "
                   f"{r['source']} | `{(r.get('revision') or '—')[:40]}` | {r.get('licence') or 'unknown'} | "
                   f"{_size(r.get('bytes'))} | `{(r.get('sha256') or '')[:16]}` |")
    for x in a.get("refused") or []:
        out.append(f"- refused {x['kind']} `{x['id']}` ({x['code']}, asked by {x.get('by')}): {x['reason']}")
    return out


def _slim(data: dict) -> dict:
    slim = dict(data)
    if slim.get("reproduction"):
        slim["reproduction"] = {k: v for k, v in slim["reproduction"].items() if k != "results_full"}
    return slim


def write_report(data: dict, run_dir: Path) -> dict[str, str]:
    """Finish ``data`` and write report.json / report.md / report.html into ``run_dir``."""
    run_dir = Path(run_dir)
    data = finalize(data, run_dir)
    out = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    texts = {"json": json.dumps(_slim(data), indent=2, default=str), "md": render_markdown(data),
             "html": render_html(data)}
    for key, text in texts.items():
        write_atomic(out[key], text)
    return {k: str(v) for k, v in out.items()}


def load_report(run_dir: Path) -> dict:
    path = Path(run_dir) / "report.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist: the run has not written its report yet") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc})") from None


def refresh_report(run_dir: Path) -> dict:
    """Re-render all three files from report.json (after an override): the score changes everywhere."""
    write_report(load_report(run_dir), run_dir)
    return load_report(run_dir)


__all__ = ["write_report", "refresh_report", "render_html", "render_markdown", "finalize",
           "Links", "ReportError", "load_report"]
