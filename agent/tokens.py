"""Counting a chat request's prompt tokens before it is sent, so the loop's context fits the window.

For the embedded model the count is exact: the server (llama-cpp-python) renders the messages with
the GGUF's own chat template (``Jinja2ChatFormatter`` on ``tokenizer.chat_template``) and tokenizes
the result with the GGUF's vocabulary; ``TokenCounter`` does the same, in-process, with the
vocabulary loaded offline without the weights (``vocab_only``). The server's ``/extras/tokenize``
endpoint would give the same tokens for raw text, but without the chat template and at a round
trip per count.

Elsewhere (any other endpoint) the model's tokenizer is not at hand. The same SmolLM2 vocabulary
then stands in for it with a stated margin (``PROXY_MARGIN``): a 49k-token vocabulary that splits
numbers into single digits counts at least as many tokens as the larger vocabularies of the usual
endpoints for what the loop sends (code, logs, JSON). Without llama-cpp-python or the GGUF file,
the bound is ``BYTES_PER_TOKEN``. The endpoint's "context length exceeded" stays the backstop: the
loop trims and retries once (agent/loop/nodes.py).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from functools import cached_property, lru_cache
from pathlib import Path

#: the other endpoints' tokens per SmolLM2 token, at most (see the module's docstring)
PROXY_MARGIN = 1.15
#: a chat template's role markers and separators per message, in the proxy count
PER_MESSAGE = 8
#: no tokenizer at all: every token covers at least this many UTF-8 bytes (prose gives ~4)
BYTES_PER_TOKEN = 2.0


def _flat(m: dict) -> dict:
    """A message as plain text for a chat template: tool calls (OpenAI shape) become their JSON."""
    content = m.get("content") or ""
    if m.get("tool_calls"):
        content += json.dumps([c.get("function", c) for c in m["tool_calls"]])
    return {"role": m.get("role", "user"), "content": content}


class TokenCounter:
    """A GGUF model's tokenizer and chat template. ``exact``: the model served is this GGUF, so the
    count is the server's own; otherwise this is a proxy for another model's tokenizer and counts
    per message with ``PROXY_MARGIN`` (cached, so a long conversation is tokenized once)."""

    def __init__(self, gguf: Path, exact: bool = True):
        self.gguf = Path(gguf)
        self.exact = exact
        self._cached = lru_cache(maxsize=4096)(self._tokens)

    @cached_property
    def _vocab(self):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # llama.cpp warns about the tiny context a vocabulary-only load creates, through a Python
        # print to stderr: silence it (it would land in the middle of the CLI's progress lines)
        with contextlib.redirect_stderr(io.StringIO()):
            llm = llama_cpp.Llama(str(self.gguf), vocab_only=True, verbose=False, n_ctx=8)
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.gguf} has no chat template to count with")
        # the server's formatter, built as llama_cpp.Llama builds it from the same metadata
        token = lambda i: llm._model.token_get_text(i) if i != -1 else ""  # noqa: E731
        fmt = Jinja2ChatFormatter(template=template, eos_token=token(llm.token_eos()),
                                  bos_token=token(llm.token_bos()), stop_token_ids=[llm.token_eos()])
        return llm, fmt

    def _tokens(self, text: str) -> int:
        llm, _ = self._vocab
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def text(self, text: str) -> int:
        """Tokens of a piece of text sent as is (function definitions, a schema)."""
        n = self._cached(text) if len(text) < 200_000 else self._tokens(text)
        return n if self.exact else math.ceil(n * PROXY_MARGIN)

    def count(self, messages: list[dict]) -> int:
        """Prompt tokens of a chat request: the rendered template with the assistant's turn opened."""
        flat = [_flat(m) for m in messages]
        if not self.exact:
            return math.ceil(sum(self._cached(m["content"]) + PER_MESSAGE for m in flat) * PROXY_MARGIN)
        llm, fmt = self._vocab
        out = fmt(messages=flat)
        # as llama_cpp.llama_chat_format.chat_formatter_to_chat_completion_handler tokenizes it
        return len(llm.tokenize(out.prompt.encode("utf-8"), add_bos=not out.added_special, special=True))


class ByteBound:
    """No tokenizer at hand: a bound from the UTF-8 length (``BYTES_PER_TOKEN``)."""

    exact = False

    def text(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)

    def count(self, messages: list[dict]) -> int:
        return sum(self.text(m["content"]) + PER_MESSAGE for m in map(_flat, messages))


@lru_cache(maxsize=1)
def proxy():
    """The counter for an endpoint whose tokenizer is not at hand (one per process)."""
    try:
        import llama_cpp  # noqa: F401

        from agent.llm import embedded_model_path

        counter = TokenCounter(embedded_model_path(), exact=False)
        counter.count([{"role": "user", "content": "x"}])  # load now: a broken install falls back here
        return counter
    except Exception:  # noqa: BLE001 - no llama-cpp-python or no GGUF file: the byte bound
        return ByteBound()
