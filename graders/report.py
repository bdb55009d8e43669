"""The graded replication report: one data dict -> report.json, report.md, report.html.

The agent assembles the data (it knows the plan); this module only renders it, so the same
renderer serves the CLI, the web UI and the leaderboard. HTML is self-contained (no CDN):
curves are embedded PNGs, the rubric tree is plain <details> elements.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(loader=PackageLoader("graders", "templates"), autoescape=select_autoescape(["html", "j2"]))


def curves_png(results: dict[str, dict]) -> str | None:
    """Training-loss curves of every method as a base64 PNG (None when there is no history)."""
    series = {m: r.get("history") or [] for m, r in results.items()}
    if not any(series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for method, hist in series.items():
        if hist:
            ax.plot([h["step"] for h in hist], [h["loss"] for h in hist], label=method)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _tree_rows(node: dict, depth: int = 0) -> list[dict]:
    rows = [{"depth": depth, "node": node}]
    for child in node.get("sub_tasks", []):
        rows += _tree_rows(child, depth + 1)
    return rows


def render_markdown(data: dict) -> str:
    g = data.get("grade") or {}
    lines = [f"# Replication report: {data['paper'].get('title', '?')}", "", f"**{data['verdict']}**", ""]
    if data.get("stop_reason"):
        lines += [f"> Run {data['status']}: {data['stop_reason']}", ""]
    lines += ["## Paper vs reproduced", "", "| experiment | metric | paper | reproduced | Δ | provenance |",
              "|---|---|---|---|---|---|"]
    for c in data.get("comparison", []):
        rep = c.get("reported") or {}
        prov = f"{rep.get('table')} p.{rep.get('page')} row '{rep.get('row')}'" if rep else "not reported"
        lines.append(f"| {c['experiment']} | {c['metric']} | {rep.get('text', '—')} | "
                     f"{_fmt((c.get('reproduced') or {}).get('display'))} | {_fmt(c.get('delta'), 2)} | {prov} |")
    lines += ["", "## Accuracy before and after fine-tuning", "", "| method | before | after |", "|---|---|---|"]
    for b in data.get("before_after", []):
        lines.append(f"| {b['method']} | {_fmt(b['before'])} | {_fmt(b['after'])} |")
    if data.get("deviations"):
        lines += ["", "## Deviations from the paper", ""]
        lines += [f"- **{d['what']}**: paper {d['paper']} → ours {d['ours']} — {d['reason']}" for d in data["deviations"]]
    lines += ["", "## Rubric", "", f"Score {_fmt(g.get('score'))}, coverage {_fmt(g.get('coverage'))}, "
              f"judge `{g.get('judge_model', '—')}`, rubric {g.get('rubric_source', '—')}", ""]
    for row in _tree_rows(data.get("graded_tree") or {}) if data.get("graded_tree") else []:
        n = row["node"]
        mark = "" if n.get("sub_tasks") else (" ✔" if n.get("score") == 1 else (" ✘" if n.get("valid_score") else " (unscored)"))
        lines.append(f"{'  ' * row['depth']}- [{_fmt(n.get('score'), 2)}]{mark} {n.get('requirements', '')[:160]}")
    c = data.get("cost", {})
    lines += ["", "## Cost", "", f"agent tokens {c.get('agent_tokens', 0)}, judge tokens {c.get('judge_tokens', 0)}, "
              f"wall {_fmt(c.get('wall_s'), 0)} s, reproduction {_fmt(c.get('reproduce_s'), 0)} s", ""]
    return "\n".join(lines)


def write_report(data: dict, run_dir: Path) -> dict[str, str]:
    """Write report.json / report.md / report.html into ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    results = (data.get("reproduction") or {}).get("results_full") or {}
    html = _env.get_template("report.html.j2").render(
        d=data, fmt=_fmt, tree=_tree_rows(data["graded_tree"]) if data.get("graded_tree") else [],
        curves=curves_png(results),
    )
    out = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    slim = {k: v for k, v in data.items()}
    if slim.get("reproduction"):
        slim["reproduction"] = {k: v for k, v in slim["reproduction"].items() if k != "results_full"}
    for key, text in (("json", json.dumps(slim, indent=2, default=str)), ("md", render_markdown(data)), ("html", html)):
        tmp = out[key].with_suffix(out[key].suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(out[key])
    return {k: str(v) for k, v in out.items()}
