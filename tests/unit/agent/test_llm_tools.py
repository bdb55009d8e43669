"""Tool calling in agent/llm.py against an OpenAI-protocol server the test runs on 127.0.0.1:
native function calling (parallel calls, broken arguments) and the schema-constrained replies
that endpoints without it (llama.cpp's server) give — the same ToolCall objects either way."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.llm import WEAK_THOUGHT_CHARS, OpenAIChatModel, as_constrained_messages, tool_reply_schema
from agent.tools.specs import tool_schema


class FakeEndpoint:
    """Answers /v1/chat/completions with the next canned message; records every request body."""

    def __init__(self, replies: list[dict]):
        self.replies, self.requests = list(replies), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                msg = owner.replies.pop(0)
                out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def endpoint():
    made = []

    def make(replies):
        e = FakeEndpoint(replies)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


TOOLS = [tool_schema("bash"), tool_schema("read_file")]
MESSAGES = [{"role": "system", "content": "You work through tools."}, {"role": "user", "content": "List the files."}]


def test_native_function_calling_with_parallel_calls_and_broken_arguments(endpoint):
    e = endpoint([{"role": "assistant", "content": "two things", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"'}},
        {"id": "call_c", "type": "function", "function": {"name": "fly", "arguments": "{}"}}]}])
    model = OpenAIChatModel("gpt-test", base_url=e.url, api_key="k")
    comp = model.complete(MESSAGES, tools=TOOLS)
    sent = e.requests[0]
    assert [t["function"]["name"] for t in sent["tools"]] == ["bash", "read_file"]
    assert sent["tools"][0]["type"] == "function" and "response_format" not in sent
    calls = comp.tool_calls
    assert [(c.id, c.name, c.arguments, c.error is None) for c in calls[:1]] == [("call_a", "bash", {"command": "ls"}, True)]
    assert calls[1].arguments is None and "not valid JSON" in calls[1].error
    assert "no tool named 'fly'" in calls[2].error
    assert comp.text == "two things" and comp.usage.prompt_tokens == 11


def test_constrained_replies_give_the_same_tool_calls(endpoint):
    reply = {"thought": "look first", "calls": [{"tool": "bash", "args": {"command": "ls", "timeout": 30}},
                                                 {"tool": "read_file", "args": {"path": "train.py"}}]}
    e = endpoint([{"role": "assistant", "content": json.dumps(reply)}])
    model = OpenAIChatModel("smollm", base_url=e.url, api_key="k", json_mode="json_object")
    history = MESSAGES + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "pwd"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "name": "bash", "content": "/workspace"}]
    comp = model.complete(history, tools=TOOLS)
    sent = e.requests[0]
    assert "tools" not in sent  # the endpoint has no function calling: a grammar-constrained reply instead
    schema = sent["response_format"]["schema"]
    options = schema["properties"]["calls"]["items"]["anyOf"]
    assert [o["properties"]["tool"]["enum"] for o in options] == [["bash"], ["read_file"]]
    assert "maxLength" not in json.dumps(schema)  # grammar-friendly: no keyword llama.cpp explodes
    # the history was turned into plain turns the model can read: its own JSON, then the result
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert json.loads(sent["messages"][2]["content"])["calls"] == [{"tool": "bash", "args": {"command": "pwd"}}]
    assert sent["messages"][3]["content"].startswith("[result of bash]\n/workspace")
    assert "bash(command, timeout)" in sent["messages"][0]["content"]
    assert [(c.name, c.arguments) for c in comp.tool_calls] == [("bash", {"command": "ls", "timeout": 30}),
                                                                 ("read_file", {"path": "train.py"})]
    assert comp.text == "look first"


def test_a_constrained_reply_that_is_not_the_object_gives_no_calls(endpoint):
    e = endpoint([{"role": "assistant", "content": "I think I will run ls."}])
    comp = OpenAIChatModel("smollm", base_url=e.url, api_key="k", json_mode="json_object").complete(MESSAGES, tools=TOOLS)
    assert comp.tool_calls == [] and "run ls" in comp.text


def test_reply_schema_and_message_conversion_are_pure():
    schema = tool_reply_schema([tool_schema("submit")], max_calls=1)
    assert schema["properties"]["calls"]["maxItems"] == 1
    assert schema["properties"]["calls"]["items"]["properties"]["tool"]["enum"] == ["submit"]
    msgs = as_constrained_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                                   [tool_schema("submit")])
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == "a\n\nb"


def test_a_weak_models_thought_is_bounded_in_the_grammar(endpoint):
    """A free thought string is where a 135M model rambles until the reply is cut off; the weak
    model's schema bounds it (llama.cpp compiles maxLength into the grammar), a strong one's not."""
    reply = {"role": "assistant", "content": json.dumps({"thought": "t", "calls": [{"tool": "submit", "args": {"note": "n"}}]})}
    e = endpoint([reply, reply])
    weak = OpenAIChatModel("smollm", base_url=e.url, api_key="k", json_mode="json_object")
    weak.weak = True
    assert [c.name for c in weak.complete(MESSAGES, tools=[tool_schema("submit")]).tool_calls] == ["submit"]
    thought = e.requests[0]["response_format"]["schema"]["properties"]["thought"]
    assert thought == {"type": "string", "maxLength": WEAK_THOUGHT_CHARS}
    weak.weak = False
    weak.complete(MESSAGES, tools=[tool_schema("submit")])
    assert e.requests[1]["response_format"]["schema"]["properties"]["thought"] == {"type": "string"}
