"""Recorded trajectories of a capable model, replayed.

A trajectory is recorded by being the model: ``../shared/tools/relay.py DIR PORT`` saves each request
the agent sends as DIR/req-N.json and serves the answer written by hand as DIR/resp-N.json. ``record``
keeps, per turn, the answer and a digest of the request it answered (the tools offered, whether a JSON
schema was asked for, the roles of the messages, the start of the last one). ``Replay`` serves the
answers again, in order, on loopback, and checks each request against the digest of the one it
replaces: the same tools, the same kind of answer asked for, the same roles. A request that diverges,
or one after the script is spent, is answered with an HTTP error and recorded in ``errors`` — the test
fails loudly instead of the run drifting on answers written for another conversation.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFLIGHT = "Reply with the word OK"  # the CLI's one-word endpoint check (agent.llm)


def digest(req: dict) -> dict:
    """What a replayed request must share with the recorded one (its text may differ: timings, ids)."""
    msgs = req.get("messages") or []
    schema = (req.get("response_format") or {}).get("json_schema") or {}
    return {"tools": sorted(t["function"]["name"] for t in req.get("tools") or []),
            "schema": schema.get("name"), "schema_keys": sorted((schema.get("schema") or {}).get("properties") or {}),
            "roles": [m.get("role") for m in msgs], "last": str((msgs[-1] if msgs else {}).get("content") or "")[:400]}


def record(relay_dir: Path, out: Path, **about) -> dict:
    """The relay directory's turns as a trajectory file (answered requests only, in order)."""
    turns = []
    for req in sorted(relay_dir.glob("req-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        resp = req.with_name(req.name.replace("req-", "resp-"))
        if resp.exists():
            turns.append({"request": digest(json.loads(req.read_text())), "response": json.loads(resp.read_text())})
    data = {**about, "turns": turns}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def _completion(req: dict, ans: dict) -> dict:
    calls = [{"id": "call_" + uuid.uuid4().hex[:10], "type": "function",
              "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                           else json.dumps(c["arguments"])}} for c in ans.get("tool_calls") or []]
    msg = {"role": "assistant", "content": ans.get("content")}
    if calls:
        msg["tool_calls"] = calls
    size = len(json.dumps(req.get("messages") or [])) // 4
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", "replay"),
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": size, "completion_tokens": 50, "total_tokens": size + 50}}


def _diverges(got: dict, want: dict) -> str | None:
    for key in ("tools", "schema", "schema_keys", "roles"):
        if got[key] != want[key]:
            return f"{key}: recorded {want[key]!r}, now {got[key]!r}"
    return None


class Replay:
    """An OpenAI-protocol endpoint on 127.0.0.1 that answers with a trajectory's recorded turns."""

    def __init__(self, trajectory: Path):
        self.turns = json.loads(Path(trajectory).read_text())["turns"]
        self.served = 0
        self.errors: list[str] = []
        self.requests: list[dict] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, obj: dict, code: int = 200) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "replay", "object": "model", "owned_by": "replay"}]})

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                msgs = req.get("messages") or []
                if len(msgs) == 1 and PREFLIGHT in str(msgs[0].get("content")):
                    return self._send(_completion(req, {"content": "OK"}))
                with lock:
                    n = replay.served
                    replay.requests.append(req)
                    if n >= len(replay.turns):
                        why = f"request {n + 1}: the recorded script is spent ({len(replay.turns)} turns)"
                    else:
                        why = _diverges(digest(req), replay.turns[n]["request"])
                        why = why and f"request {n + 1} diverges from the recording: {why}"
                    if why:
                        replay.errors.append(why)
                        return self._send({"error": {"message": why, "type": "replay_diverged"}}, 400)
                    replay.served += 1
                self._send(_completion(req, replay.turns[n]["response"]))

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Replay":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
