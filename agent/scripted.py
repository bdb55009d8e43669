"""A scripted model loadable from a JSON file, for child-process tests (crash/resume harness).

``REPRO_SCRIPTED_MODEL=/path/script.json repro run ...`` makes the runner use it for both the
agent and the judge. Unlike ``agent.llm.ScriptedChatModel`` (a queue), answers are chosen by
*rules*, so a resumed process answers the same request the same way wherever it restarts:

    {"name": "scripted",
     "rules": [{"match": "Step 1 of 2", "reply": {...}},    # first match wins (planning stage 1);
               {"match": "Step 2 of 2", "reply": {...}},    # planning stage 2 (stage 3: no call);
               {"match": "Score each criterion", "verdicts": 1},          # every key gets score 1
               {"last": "wrote train.py", "calls": [{"tool": "bash", "args": {...}}]},  # a coding-agent turn
               {"match": "", "reply": "..."}],                            # "" matches anything
     "fail_first": 0,            # answer the first N calls (per process) with a 5xx-like error
     "calls_log": "/path/calls.jsonl"}                                   # one line per call

``match`` is a substring of the request's messages joined together; for a tool-loop request
(``tools`` given), ``last`` is a substring of the latest tool result (the task before any). Each call is appended to
``calls_log`` (flushed + fsynced) so a test can count calls across a SIGKILL. An unmatched
request raises ``ScriptExhausted`` (never a silent default).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agent.llm import Completion, ModelError, ScriptExhausted, Usage, parse_tool_calls
from graders.files import parse_json

ENV_VAR = "REPRO_SCRIPTED_MODEL"


class ScriptedServerError(ModelError):
    """A simulated server error (the runner reports it like any transport failure)."""


class FileScriptedModel:
    def __init__(self, path: Path):
        self.path = Path(path)
        spec = json.loads(self.path.read_text())
        self.name = spec.get("name", "scripted")
        self.rules: list[dict] = spec["rules"]
        self.fail_first = int(spec.get("fail_first", 0))
        self.calls_log = Path(spec["calls_log"]) if spec.get("calls_log") else None
        self.calls = 0
        self.last_text = ""

    def _log(self, entry: dict) -> None:
        if self.calls_log is None:
            return
        with open(self.calls_log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def complete(self, messages, *, schema=None, tools=None, temperature=0.0, seed=None, max_tokens=None) -> Completion:
        self.calls += 1
        text_in = "\n".join(str(m.get("content", "")) for m in messages)
        self.last_text = text_in
        if tools is not None:
            return self._tool_reply(messages, tools, text_in)
        digest = hashlib.sha256(text_in.encode()).hexdigest()[:16]
        if self.calls <= self.fail_first:
            self._log({"pid": os.getpid(), "request": digest, "error": "503"})
            raise ScriptedServerError("scripted 503: service unavailable")
        for i, rule in enumerate(self.rules):
            if "calls" not in rule and rule.get("match", "") in text_in:
                reply = self._reply(rule, schema)
                self._log({"pid": os.getpid(), "request": digest, "rule": i})
                text = reply if isinstance(reply, str) else json.dumps(reply)
                return Completion(text=text, parsed=_loads(text) if schema is not None else None,
                                  usage=Usage(len(text_in) // 4, len(text) // 4), model=self.name)
        raise ScriptExhausted(f"no rule in {self.path} matches the request: {text_in[-200:]!r}")

    def _tool_reply(self, messages: list[dict], tools: list[dict], text_in: str) -> Completion:
        """A coding-agent turn: the first rule whose ``last`` occurs in the latest tool result (the
        task message before any) answers with its ``calls`` — so a resumed process, wherever it
        restarts, answers the same state the same way."""
        last = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "tool"),
                    str(messages[min(1, len(messages) - 1)].get("content", "")))
        digest = hashlib.sha256(text_in.encode()).hexdigest()[:16]
        for i, rule in enumerate(self.rules):
            if "calls" in rule and rule.get("last", "") in last:
                self._log({"pid": os.getpid(), "request": digest, "rule": i})
                raw = [(None, c.get("tool", ""), c.get("raw", c.get("args"))) for c in rule["calls"]]
                calls = parse_tool_calls(raw, {t["name"] for t in tools}, f"call{self.calls}-{i}")
                return Completion(text=rule.get("thought", ""), tool_calls=calls,
                                  usage=Usage(len(text_in) // 4, 20), model=self.name)
        raise ScriptExhausted(f"no tool rule in {self.path} matches the last result: {last[-300:]!r}")

    @staticmethod
    def _reply(rule: dict, schema: dict | None) -> Any:
        if "verdicts" in rule:  # a judge call: one verdict per key the schema allows
            keys = (((schema or {}).get("properties", {}).get("verdicts", {}).get("items", {})
                     .get("properties", {}).get("key", {}).get("enum")) or [])
            return {"verdicts": [{"key": k, "explanation": "scripted verdict", "score": int(rule["verdicts"])}
                                 for k in keys]}
        return rule["reply"]


_loads = parse_json


def from_env() -> FileScriptedModel | None:
    path = os.environ.get(ENV_VAR)
    return FileScriptedModel(Path(path)) if path else None
