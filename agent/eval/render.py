"""Write the leaderboard: leaderboard.json (everything), .csv, .md, .html and leaderboard.png.

Every file is written to a temp name and renamed, so an interrupted render never leaves a
half-written leaderboard next to the runs."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from agent.eval.leaderboard import CATEGORIES
from graders.files import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"
CAT_SHORT = {"Code Development": "code_dev", "Code Execution": "code_exec", "Result Analysis": "result_analysis"}


def pm(stat: dict | None, pct: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    k = 100 if pct else 1
    text = f"{k * stat['mean']:.1f}"
    return text + (f" ± {k * stat['sem']:.1f}" if stat.get("sem") is not None else "")


def num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def dollars(cost: dict) -> str:
    if cost.get("dollars_total") is None:
        return f"unknown ({cost.get('dollars_unknown', 0)} run(s) unpriced)" if cost.get("dollars_unknown") else "—"
    return f"${cost['dollars_total']:.4f}"


def render_json(lb: dict) -> str:
    return json.dumps(lb, indent=2, default=str) + "\n"


def _csv_row(kind: str, config: str, paper: str, c: dict, failures: Any, reports: str) -> dict:
    row = {"kind": kind, "config": config, "paper": paper, "n": c["n"], "missing": c["missing"],
           "score_mean": c["score"]["mean"], "score_sem": c["score"]["sem"],
           "coverage_mean": c["coverage"]["mean"], "coverage_sem": c["coverage"]["sem"]}
    for cat in CATEGORIES:
        s = c["by_category"].get(cat) or {}
        row[f"{CAT_SHORT[cat]}_mean"], row[f"{CAT_SHORT[cat]}_sem"] = s.get("mean"), s.get("sem")
    cost = c["cost"]
    row.update(agent_tokens_mean=cost["agent_tokens"]["mean"], judge_tokens_mean=cost["judge_tokens"]["mean"],
               dollars_total=cost["dollars_total"], wall_s_mean=cost["wall_s"]["mean"],
               sandbox_s_mean=cost["sandbox_s"]["mean"], failures=failures,
               result_analysis_zeroed=c["result_analysis_zeroed"], stale_result_runs=c["stale_result_runs"],
               blacklisted=c["blacklisted"], reports=reports)
    return row


def render_csv(lb: dict) -> str:
    rows = []
    for c in lb["cells"]:
        causes = " | ".join(f"s{f['seed']} {f['status']}: {f['cause']}" for f in c["failures"])
        rows.append(_csv_row("cell", c["config"], c["paper"], c, causes,
                             " ".join(r["link"] for r in c["runs"] if r.get("link"))))
    for s in lb["summary"]:
        rows.append(_csv_row("summary", s["config"], "ALL", s, s["failures"], ""))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["kind"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_md(lb: dict) -> str:
    cats = list(CATEGORIES)
    out = ["# Replication leaderboard", "",
           f"{len(lb['papers'])} paper(s) × {lb['seeds']} seed(s) × {len(lb['configs'])} configuration(s). "
           "Scores in %, mean ± SEM over seeds. " + lb["method"]["failed_runs"].capitalize() + ". "
           "Summary: " + lb["method"]["summary"] + ".", "", "![scores](leaderboard.png)", "",
           "## Summary per configuration", "",
           "| configuration | papers | runs | score | coverage | " + " | ".join(cats) +
           " | agent tokens/run | $ total | wall s/run | sandbox s/run | failures | RA zeroed | blacklisted | missing "
           "| judge (measured accuracy) |",
           "|" + "---|" * (14 + len(cats))]
    for s in lb["summary"]:
        out.append(f"| **{s['config']}** | {s['papers']} | {s['n']} | **{pm(s['score'])}** | {pm(s['coverage'])} | "
                   + " | ".join(pm(s["by_category"][c]) for c in cats)
                   + f" | {num(s['cost']['agent_tokens']['mean'])} | {dollars(s['cost'])} | "
                     f"{num(s['cost']['wall_s']['mean'], 1)} | {num(s['cost']['sandbox_s']['mean'], 1)} | "
                     f"{s['failures']} | {s['result_analysis_zeroed']} | {s['blacklisted']} | {s['missing']} | "
                     f"{s.get('judge', '—')} |")
    out += ["", "## Per paper and configuration", "",
            "| paper | configuration | n | score (per-seed reports) | coverage | " + " | ".join(cats) +
            " | agent tokens | $ total | wall s | sandbox s | failures | honesty |",
            "|" + "---|" * (11 + len(cats))]
    for c in lb["cells"]:
        links = " ".join(f"[s{r['seed']}]({r['link_md'] or r['link']})" if (r.get("link_md") or r.get("link"))
                         else f"s{r['seed']} {r['status']}" for r in c["runs"])
        fails = "; ".join(_md_escape(f"s{f['seed']} {f['status']}: {f['cause']}"[:160]) for f in c["failures"]) or "—"
        honesty = []
        if c["result_analysis_zeroed"]:
            honesty.append(f"RA 0 in {c['result_analysis_zeroed']} run(s) (start marker)")
        if c["blacklisted"]:
            honesty.append(f"{c['blacklisted']} blacklisted")
        honesty += c["blacklist"]
        out.append(f"| {c['paper']} | {c['config']} | {c['n']}" + (f" (+{c['missing']} missing)" if c["missing"] else "")
                   + f" | {pm(c['score'])} {links} | {pm(c['coverage'])} | "
                   + " | ".join(pm(c["by_category"].get(k)) for k in cats)
                   + f" | {num(c['cost']['agent_tokens']['mean'])} | {dollars(c['cost'])} | "
                     f"{num(c['cost']['wall_s']['mean'], 1)} | {num(c['cost']['sandbox_s']['mean'], 1)} | "
                     f"{fails} | {_md_escape('; '.join(honesty)) or '—'} |")
    return "\n".join(out) + "\n"


def render_html(lb: dict) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.globals.update(pm=pm, num=num, dollars=dollars)
    return env.get_template("leaderboard.html.j2").render(lb=lb, cats=list(CATEGORIES))


def render_plot(lb: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(lb["papers"]) + ["ALL (summary)"]
    configs = lb["configs"]
    width = 0.8 / max(1, len(configs))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) * max(1, len(configs)) ** 0.5), 4.0), dpi=110)
    for i, config in enumerate(configs):
        stats = [next((c["score"] for c in lb["cells"] if c["config"] == config and c["paper"] == p), {})
                 for p in lb["papers"]]
        stats.append(next(s["score"] for s in lb["summary"] if s["config"] == config))
        means = [100 * (s.get("mean") or 0.0) for s in stats]
        errs = [100 * (s.get("sem") or 0.0) for s in stats]
        xs = [g + (i - (len(configs) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=config)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("replication score (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Replication score, mean ± SEM over {lb['seeds']} seed(s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_leaderboard(lb: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "leaderboard.json", "csv": out_dir / "leaderboard.csv",
             "md": out_dir / "leaderboard.md", "html": out_dir / "leaderboard.html",
             "png": out_dir / "leaderboard.png"}
    write_atomic(paths["png"], render_plot(lb))
    write_atomic(paths["json"], render_json(lb))
    write_atomic(paths["csv"], render_csv(lb))
    write_atomic(paths["md"], render_md(lb))
    write_atomic(paths["html"], render_html(lb))
    return paths
