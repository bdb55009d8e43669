"""ingest: PDF -> structured Paper (papers package), saved as paper.json in the run dir."""
from __future__ import annotations

from langgraph.runtime import Runtime

from agent.context import RunContext
from graders.files import write_json
from agent.state import RunState
from papers import load_paper


def ingest(state: RunState, runtime: Runtime[RunContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.config
    ctx.progress("node", name="ingest", detail=str(cfg.paper_path))
    paper = load_paper(cfg.paper_path, password=cfg.password)
    write_json(cfg.run_dir / "paper.json", paper.model_dump(mode="json"))
    return {
        "paper": {
            "title": paper.title,
            "sha256": paper.sha256,
            "pages": paper.pages,
            "tables": len(paper.tables),
            "results": len(paper.results),
            "hyperparameters": len(paper.hyperparameters),
            "warnings": list(paper.warnings),
        },
        "node_log": ["ingest"],
    }
