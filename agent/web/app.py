"""Routes of the web UI: submit a paper, follow the run live, review it. Every page is
server-rendered; JavaScript only follows progress (a server-sent event stream on a run's page).

Safety for a local app: it serves 127.0.0.1 only, rejects other Host headers (DNS rebinding),
refuses every state-changing request that comes from another site (Origin) or lacks this
session's token (CSRF: a cookie-bound HMAC in every form), caps uploads, stores them under names
it chooses, and never returns a stack trace — errors become pages that say what to do.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse,
                               StreamingResponse)
from starlette.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agent import review_store
from agent.runner import new_run_id, save_run_config
from agent.web import code, jobs, runs, submit
from graders.overrides import OverrideError, add_override
from graders.report import ReportError, load_report, refresh_report, render_html
from graders.rubric import RubricError, load_graded

HERE = Path(__file__).resolve().parent
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SESSION_COOKIE = "repro_session"
TOKEN_FIELD = "csrf_token"
STREAM_S = 120.0  # one event stream's life; the browser's EventSource reconnects by itself
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


def _duration(seconds) -> str:
    """Seconds as '42 s', '3 min 05 s' or '1 h 02 min' ('—' when unknown)."""
    if not isinstance(seconds, (int, float)):
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def _server_secret(runs_dir: Path) -> bytes:
    """The key session tokens are signed with; kept beside the runs (0600) so a restart keeps pages valid."""
    path = runs_dir / ".web-secret"
    if not path.exists():
        runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def create_app(runs_dir: Path, *, scheduler: jobs.Scheduler | None = None, start_runs: bool = True,
               endpoints_file: Path | None = None, max_upload_mb: int = submit.MAX_UPLOAD_MB) -> FastAPI:
    """The app over ``runs_dir``. With ``start_runs`` it runs the queue (submitted runs start as
    processes) while it is up; ``scheduler`` says how (parallel runs), default one at a time."""
    runs_dir = Path(runs_dir)
    secret = _server_secret(runs_dir)
    sched = scheduler or jobs.Scheduler(runs_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_runs:
            sched.start()
        try:
            yield
        finally:
            if start_runs:
                await run_in_threadpool(sched.stop)

    app = FastAPI(title="Repro", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.scheduler = sched
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS + ["testserver"])
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["score"] = lambda v: "—" if v is None else f"{v:.2f}"
    templates.env.filters["pct"] = lambda v: "—" if v is None else f"{v:.0%}"
    templates.env.filters["when"] = _when
    templates.env.filters["duration"] = _duration

    def token(request: Request) -> str:
        session = getattr(request.state, "session", "") or ""
        return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"runs_dir": runs_dir, "csrf": token(request), **ctx},
                                          status_code=status)

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
        # the session a CSRF token is bound to: a random cookie, set on the first visit
        session = request.cookies.get(SESSION_COOKIE, "")
        fresh = not (len(session) == 32 and session.isalnum())
        request.state.session = secrets.token_hex(16) if fresh else session
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return error_page(request, 403, "Request refused",
                                  "This form was sent from another web site; actions are only accepted "
                                  "from this app's own pages.")
        response = await call_next(request)
        if fresh:
            response.set_cookie(SESSION_COOKIE, request.state.session, httponly=True, samesite="strict")
        return response

    def check_token(request: Request, sent: str | None) -> None:
        if not sent or not hmac.compare_digest(str(sent), token(request)):
            raise HTTPException(403, "This form's session token is missing or stale (the page is from another "
                                     "session, or another site sent it). Reload the page and try again.")

    async def form(request: Request) -> dict[str, str]:
        """An urlencoded form, once its session token is checked (every state-changing form uses this)."""
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        check_token(request, fields.get(TOKEN_FIELD))
        return fields

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

    def new_form(request: Request, status: int = 200, problems: list[str] | None = None, values: dict | None = None):
        return page(request, "new.html", status, endpoints=submit.configured_endpoints(endpoints_file),
                    problems=problems or [], values=values or {}, max_upload_mb=max_upload_mb,
                    parallel=sched.parallel, tab="new")

    @app.get("/new", response_class=HTMLResponse)
    async def new_page(request: Request):
        return new_form(request)

    @app.post("/new")
    async def new_run(request: Request):
        try:
            size = int(request.headers.get("content-length") or "")
        except ValueError:
            return error_page(request, 411, "Upload refused", "The upload did not say its size; send it from the form.")
        if size > max_upload_mb << 20:
            return error_page(request, 413, "Upload too large",
                              f"{size / 2**20:.1f} MiB is over this server's limit of {max_upload_mb} MiB "
                              "(repro serve --max-upload-mb). Nothing was queued.")
        data = await request.form(max_files=3, max_fields=30, max_part_size=64 << 10)
        check_token(request, data.get(TOKEN_FIELD))
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        shown = {k: v for k, v in fields.items() if k not in (TOKEN_FIELD, "password")}
        staged = submit.stage_dir(runs_dir)
        try:
            pdf = data.get("paper")
            if not getattr(pdf, "filename", None):
                raise submit.SubmitError(["paper: choose the paper's PDF to upload"])
            problems = []
            for part, name, limit in ((pdf, "paper.pdf", max_upload_mb << 20), (data.get("rubric"), "rubric.json",
                                      submit.MAX_SIDE_FILE_BYTES), (data.get("addendum"), "addendum.md",
                                      submit.MAX_SIDE_FILE_BYTES)):
                if getattr(part, "filename", None):
                    problem = await _save(part, staged / name, limit)
                    if problem:
                        problems.append(problem)
            if problems:
                raise submit.SubmitError(problems)
            s = submit.settings(fields, submit.configured_endpoints(endpoints_file))
            bundled = submit.adopt_bundled(staged)
            run_id = new_run_id(Path(str(pdf.filename)).name)  # letters, digits and dashes only: never a path
            cfg = submit.new_config(run_id, runs_dir, staged, s, parallel=sched.parallel)
            password = fields.get("password") or None
            title = await run_in_threadpool(submit.check, staged, cfg, password)
        except submit.SubmitError as exc:
            submit.discard(staged)
            return new_form(request, 400, exc.problems, shown)
        except BaseException:
            submit.discard(staged)
            raise
        cfg.run_dir.mkdir(parents=True)
        staged.rename(cfg.run_dir / "input")
        save_run_config(cfg)
        sched.submit(cfg.run_dir, title=title, password=password)
        said = "Queued: the server starts it when a slot is free; this page follows it live."
        if bundled:
            said += f" This is {bundled}."
        return RedirectResponse(f"/runs/{quote(run_id)}?msg=" + quote(said), status_code=303)

    @app.get("/api/runs/{run_id}/live")
    async def api_live(run_id: str):
        return JSONResponse(await run_in_threadpool(runs.live, runs.run_path(runs_dir, run_id)))

    @app.get("/runs/{run_id}/events")
    async def run_events(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)

        async def stream():
            yield "retry: 2000\n\n"
            last, until = None, time.monotonic() + STREAM_S
            while time.monotonic() < until and not await request.is_disconnected():
                payload = await run_in_threadpool(runs.live, d)
                text = json.dumps(payload, default=str)
                if text != last:
                    yield f"data: {text}\n\n"
                    last = text
                if payload["status"] in runs.ENDED:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(1.0)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/runs/{run_id}/progress")
    async def api_progress(run_id: str):
        return JSONResponse(runs.progress(runs.run_path(runs_dir, run_id)))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str, msg: str = "", error: str = ""):
        d = runs.run_path(runs_dir, run_id)
        body, problem = None, None
        try:
            body = render_html(load_report(d), links=WebLinks(run_id), override_url=f"/runs/{quote(run_id)}/override",
                               standalone=False, form_fields={TOKEN_FIELD: token(request)})
        except ReportError as exc:
            problem = str(exc) if (d / "report.json").exists() else None
        row = runs.summary(d)
        if row["status"] == "queued":
            row["queue_position"] = runs.queue_position(d)
        live = None if row["status"] in runs.ENDED else await run_in_threadpool(runs.live, d)
        return page(request, "run.html", run=row, report_html=body, msg=msg, error=error or problem,
                    review=review_store.pending_review(d), answered=runs.answered_review(d), tab="report", live=live)

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
        if sched.requeue(d, f"{what.lower()} by {dec['who']} in the browser"):
            return back(run_id, msg=f"{what} by {dec['who']}; the run is queued to continue.")
        return back(run_id, msg=f"{what} by {dec['who']}; the run continues when it is resumed "
                                f"(repro run --resume {run_id}).")

    @app.post("/runs/{run_id}/cancel")
    async def cancel(request: Request, run_id: str):
        d = runs.run_path(runs_dir, run_id)
        f = await form(request)
        who = f.get("who", "").strip() or review_store.default_reviewer()
        try:
            what = await run_in_threadpool(sched.cancel, d, who)
        except ValueError as exc:
            return back(run_id, error=f"Not cancelled: {exc}.")
        return back(run_id, msg=f"Cancelled by {who}: {what}.")

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


async def _save(part, dest: Path, limit: int) -> str | None:
    """Copy an uploaded file to ``dest`` (a name we chose), refusing it past ``limit`` bytes."""
    n = 0
    with dest.open("wb") as out:
        while chunk := await part.read(1 << 20):
            n += len(chunk)
            if n > limit:
                return f"{dest.stem}: the file is over {limit / 2**20:.0f} MiB"
            out.write(chunk)
    return None if n else f"{dest.stem}: the uploaded file is empty"
