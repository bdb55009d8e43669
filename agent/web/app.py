"""Routes of the review UI. Every page is server-rendered; JavaScript only polls progress.

Safety for a local app: it serves 127.0.0.1 only, rejects other Host headers (DNS
rebinding) and cross-origin form posts (another site cannot approve a run or change a grade),
and never returns a stack trace — errors become pages that say what to do.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agent import review_store
from agent.web import code, runs
from graders.overrides import OverrideError, add_override
from graders.report import ReportError, load_report, refresh_report, render_html
from graders.rubric import RubricError, load_graded

HERE = Path(__file__).resolve().parent
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
log = logging.getLogger("repro.web")


class WebLinks:
    """Report links that open the code browser at the cited lines and the PDF at a page."""

    def __init__(self, run_id: str):
        self.base = f"/runs/{quote(run_id)}"

    def file(self, rel: str, start: int | None = None, end: int | None = None) -> str:
        url = f"{self.base}/files/{quote(rel)}"
        return f"{url}?lines={start}-{end or start}#L{start}" if start else url

    def paper(self, page: int | None = None) -> str:
        return f"{self.base}/paper" + (f"#page={page}" if page else "")

    def trajectory(self, turn: int | None = None) -> str:
        """The step-by-step view of the coding agent's loop (at one turn)."""
        return f"{self.base}/trajectory" + (f"#turn-{int(turn)}" if turn is not None else "")


def _when(t) -> str:
    """An epoch time as local 'YYYY-MM-DD HH:MM:SS' ('—' when missing)."""
    try:
        return datetime.fromtimestamp(float(t)).isoformat(sep=" ", timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"


def create_app(runs_dir: Path) -> FastAPI:
    runs_dir = Path(runs_dir)
    app = FastAPI(title="Repro review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS + ["testserver"])
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["score"] = lambda v: "—" if v is None else f"{v:.2f}"
    templates.env.filters["pct"] = lambda v: "—" if v is None else f"{v:.0%}"
    templates.env.filters["when"] = _when

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"runs_dir": runs_dir, **ctx}, status_code=status)

    def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, message=message)

    # ------------------------------------------------------------ errors as pages
    @app.exception_handler(runs.RunNotFound)
    async def _not_found(request: Request, exc: runs.RunNotFound):
        return error_page(request, 404, "No such run", f"{exc}. The runs list shows the runs there are.")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return error_page(request, 404, "Page not found", f"Nothing lives at {request.url.path}.")
        return error_page(request, exc.status_code, "Request refused", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_page(request, 400, "Bad request", "The request was malformed; go back and try again.")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("error serving %s", request.url.path)  # the trace goes to the server's log only
        return error_page(request, 500, "Something went wrong",
                          f"The page could not be built ({type(exc).__name__}). The server's log has the details; "
                          "the run's files are untouched.")

    @app.middleware("http")
    async def _same_origin_posts(request: Request, call_next):
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return error_page(request, 403, "Request refused",
                                  "This form was sent from another web site; review actions are only accepted "
                                  "from this app's own pages.")
        return await call_next(request)

    async def form(request: Request) -> dict[str, str]:
        # urlencoded forms parsed here: avoids a python-multipart dependency for four fields
        body = (await request.body()).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def back(run_id: str, anchor: str = "", **params) -> RedirectResponse:
        q = f"?{urlencode(params)}" if params else ""
        return RedirectResponse(f"/runs/{quote(run_id)}{q}{anchor}", status_code=303)

    def report_or_none(d: Path) -> dict | None:
        try:
            return load_report(d)
        except ReportError:
            return None

    # ------------------------------------------------------------ pages
    @app.get("/report.css")
    async def report_css():
        # the report's own stylesheet (graders/templates), so the embedded report looks as it does standalone
        css = resources.files("graders").joinpath("templates", "report.css").read_text()
        return PlainTextResponse(css, media_type="text/css")

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request):
        return page(request, "runs.html", rows=runs.list_summaries(runs_dir))

    @app.get("/api/runs")
    async def api_runs():
        return JSONResponse(runs.list_summaries(runs_dir))

    @app.get("/api/runs/{run_id}/progress")
    async def api_progress(run_id: str):
        return JSONResponse(runs.progress(runs.run_path(runs_dir, run_id)))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str, msg: str = "", error: str = ""):
        d = runs.run_path(runs_dir, run_id)
        body, problem = None, None
        try:
            body = render_html(load_report(d), links=WebLinks(run_id), override_url=f"/runs/{quote(run_id)}/override",
                               standalone=False)
        except ReportError as exc:
            problem = str(exc) if (d / "report.json").exists() else None
        return page(request, "run.html", run=runs.summary(d), report_html=body, msg=msg, error=error or problem,
                    review=review_store.pending_review(d), answered=runs.answered_review(d), tab="report")

    @app.get("/runs/{run_id}/files", response_class=HTMLResponse)
    async def files_index(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        tree = code.file_tree(d)
        first = next((f for f in tree if f.endswith("train.py")), tree[0] if tree else None)
        if first is None:
            return error_page(request, 404, "No files yet", "This run has not written any code yet.")
        return RedirectResponse(f"/runs/{quote(run_id)}/files/{quote(first)}", status_code=303)

    @app.get("/runs/{run_id}/files/{rel:path}", response_class=HTMLResponse)
    async def file_page(request: Request, run_id: str, rel: str, lines: str | None = None):
        d = runs.run_path(runs_dir, run_id)
        tree = code.file_tree(d)
        if rel not in tree:  # only listed files: no path can escape the run directory
            return error_page(request, 404, "File not found",
                              f"{rel} is not one of this run's code, result or log files.")
        text = (d / rel).read_text(encoding="utf-8", errors="replace")
        return page(request, "file.html", run=runs.summary(d), tab="files", tree=tree, rel=rel,
                    lines=code.highlight_lines(text, rel), hl=code.parse_range(lines),
                    comments=code.comments_for(report_or_none(d), rel))

    @app.get("/runs/{run_id}/trajectory", response_class=HTMLResponse)
    async def trajectory_page(request: Request, run_id: str, only: str = ""):
        d = runs.run_path(runs_dir, run_id)
        values, _ = runs.checkpoint_values(d)
        loop = runs.loop_progress(values) or {}
        view = code.trajectory_view(d, loop.get("turn") if loop else None)
        turns = view["turns"]
        if only == "changes":
            turns = [t for t in turns if t["step"] and t["step"]["files"]]
        agent = (report_or_none(d) or {}).get("agent") or {}
        return page(request, "trajectory.html", run=runs.summary(d), tab="trajectory", turns=turns, view=view,
                    only=only, loop_state=loop, agent=agent)

    @app.get("/runs/{run_id}/diff")
    async def diff_page(run_id: str):
        # the old debug-diff page: every file change is now a step of the trajectory
        runs.run_path(runs_dir, run_id)
        return RedirectResponse(f"/runs/{quote(run_id)}/trajectory?only=changes", status_code=303)

    @app.get("/runs/{run_id}/plan", response_class=HTMLResponse)
    async def plan_page(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        saved = runs._json(d / "plan.json") or {}
        return page(request, "plan.html", run=runs.summary(d), tab="plan", plan=saved.get("plan"),
                    problems=saved.get("problems") or [], stages=saved.get("stages") or {},
                    review=review_store.pending_review(d), answered=runs.answered_review(d))

    @app.get("/runs/{run_id}/paper")
    async def paper(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        pdf = Path(str((runs._json(d / "run.json") or {}).get("paper_path", "")))
        if pdf.suffix.lower() != ".pdf" or not pdf.is_file():
            return error_page(request, 404, "Paper not found", f"The paper's PDF is no longer at {pdf}.")
        return FileResponse(pdf, media_type="application/pdf")

    @app.get("/runs/{run_id}/report.{fmt}")
    async def report_file(request: Request, run_id: str, fmt: str):
        d = runs.run_path(runs_dir, run_id)
        if fmt not in ("html", "md", "json") or not (d / f"report.{fmt}").exists():
            return error_page(request, 404, "No report", f"This run has no report.{fmt} (yet).")
        text = (d / f"report.{fmt}").read_text()
        if fmt == "html":
            return HTMLResponse(text)
        return JSONResponse(json.loads(text)) if fmt == "json" else PlainTextResponse(text)

    # ------------------------------------------------------------ actions
    @app.post("/runs/{run_id}/review")
    async def review(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        f = await form(request)
        who = f.get("who", "").strip() or review_store.default_reviewer()
        try:
            dec = review_store.record_decision(d, f.get("action", ""), f.get("feedback", ""), who)
        except review_store.ReviewError as exc:
            return back(run_id, error=str(exc))
        what = "Approved" if dec["action"] == "approve" else "Feedback sent"
        return back(run_id, msg=f"{what} by {dec['who']}; the run continues when it is resumed "
                                f"(repro run --resume {run_id}).")

    @app.post("/runs/{run_id}/override")
    async def override(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        f = await form(request)
        leaf_id = f.get("leaf_id", "")
        score = {"1": 1.0, "0": 0.0, "withdraw": None}.get(f.get("score", ""), "bad")
        try:
            if score == "bad":
                raise OverrideError("choose pass, fail or withdraw")
            if not (d / "graded.json").exists():
                raise OverrideError("this run has not been graded yet")
            judge_tree = load_graded(d / "graded.json", allow_duplicate_ids=True)
            entry = add_override(d, judge_tree, leaf_id, score, f.get("reason", ""),
                                 f.get("who", "").strip() or review_store.default_reviewer())
            report = refresh_report(d)
        except (OverrideError, RubricError, ReportError) as exc:
            return back(run_id, f"#leaf-{leaf_id}", error=f"Grade not changed: {exc}")
        done = "withdrawn" if entry["score"] is None else f"set to {'pass' if entry['score'] == 1 else 'fail'}"
        return back(run_id, f"#leaf-{leaf_id}",
                    msg=f"Override {done} by {entry['who']}; score now {report['grade']['score']:.2f}.")

    return app
