"""Browser tests: the real app served by uvicorn on 127.0.0.1, driven by Debian's chromium.

Playwright is used with executable_path (never its own browser download). Chromium and playwright
are requirements (tests/conftest.py need): missing, the tests fail under `make test` (CI installs
both, .ci/run) and skip, with the reason, elsewhere.
"""
import importlib.util
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import need, need_import

CHROMIUM = os.environ.get("REPRO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _fixture_module():
    path = Path(__file__).resolve().parents[1] / "unit" / "report" / "fixture_run.py"
    if "repro_fixture_run" not in sys.modules:
        spec = importlib.util.spec_from_file_location("repro_fixture_run", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["repro_fixture_run"] = mod
    return sys.modules["repro_fixture_run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fx():
    return _fixture_module()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, fx):
    """A finished run, a real pause of the runner (plan review) and a run in the middle."""
    d = tmp_path_factory.mktemp("runs")
    fx.finished_run(d)
    fx.paused_run(d)
    fx.running_run(d)
    return d


@pytest.fixture(scope="module")
def server(runs_dir):
    import uvicorn

    from agent.web.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(runs_dir), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline or not t.is_alive():
            pytest.fail("the web app did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def browser():
    pw_mod = need_import("playwright.sync_api", "playwright (pip install playwright; no browser download)")
    need(None if Path(CHROMIUM).exists() else f"no chromium at {CHROMIUM}", "Chromium (apt-get install chromium)")
    with pw_mod.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    p.set_default_timeout(10_000)
    yield p
    ctx.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Screenshots go here (REPRO_SCREENSHOTS overrides, to keep them)."""
    d = Path(os.environ.get("REPRO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d
