"""What the model is shown each turn: system + task (always), then the turns, trimmed to fit.

Trimming (PaperBench's and OpenHands' lesson): keep the system and task messages; first shorten
the oldest tool outputs, then drop the oldest whole turns — a call is never left without its
result — and say what was dropped; the agent's NOTES.md carries what matters across.
"""
from __future__ import annotations

import json

from agent.plan import Plan
from agent.prompts import render
from agent.recipes import registry
from graders.contract import CONTRACT_TEXT
from sandbox.broker import catalogue

CHARS_PER_TOKEN = 3.5
REPLY_TOKENS = 1200
KEEP_RECENT_TURNS = 3


def system_message(offline, brief: bool) -> dict:
    return {"role": "system", "content": render("agent_system.j2", offline=offline, brief=brief,
                                                contract=CONTRACT_TEXT)}


def task_message(plan: Plan, paper, budget: str, brief: bool) -> dict:
    hyper = (f"{plan.hyper.epochs} epoch(s), batch size {plan.hyper.batch_size}, seed {plan.hyper.seed}"
             + (f", at most {plan.hyper.train_limit} training examples" if plan.hyper.train_limit else ""))
    return {"role": "user", "content": render(
        "agent_task.j2", title=paper.title, abstract=paper.abstract[:1500], experiments=plan.experiments,
        deviations=plan.deviations, hyper=hyper, recipes=", ".join(sorted(registry())),
        addendum=(plan.addendum or "")[:4000], budget=budget, brief=brief,
        model=_where("model", plan.model), dataset=_where("dataset", plan.dataset, plan.dataset_config))}


def _where(kind: str, name: str, config: str | None = None) -> str:
    if catalogue.lookup(kind, name) is not None:
        return f"{name} (under {'$REPRO_MODELS' if kind == 'model' else '$REPRO_DATA'})"
    return (f"{name}{f' configuration {config}' if config else ''} (Hub id, the paper's own: load it by that id, "
            f"offline, from the asset broker's read-only cache)")


def turn_messages(turn: dict, result_cap: int) -> list[dict]:
    """One turn as chat messages: notes shown before it, the reply, each call's result."""
    msgs = [{"role": "user", "content": n} for n in turn.get("notes", [])]
    reply = turn.get("reply") or {}
    calls = reply.get("calls") or []
    if not calls:
        msgs.append({"role": "assistant", "content": reply.get("text") or ""})
        return msgs
    msgs.append({"role": "assistant", "content": reply.get("text") or "", "tool_calls": [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments") or {})}} for c in calls]})
    results = {r["id"]: r for r in turn.get("results", [])}
    for c in calls:
        r = results.get(c["id"])
        content = r["content"] if r else "(not run: the loop stopped before this call)"
        if len(content) > result_cap:
            half = result_cap // 2
            content = content[:half] + f"\n[... {len(content) - result_cap} characters cut to fit the context ...]\n" \
                + content[-half:]
        msgs.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": content})
    return msgs


def _size(msgs: list[dict]) -> int:
    return sum(len(m.get("content") or "") + 40 * len(m.get("tool_calls") or []) + 8 for m in msgs)


def build_messages(head: list[dict], turns: list[dict], notes: list[str], context_tokens: int | None) -> tuple[list[dict], dict]:
    """head (system, task) + turns + this turn's notes, within the model's context.

    Returns the messages and what was trimmed ({"shortened": n, "dropped": n})."""
    limit = int(((context_tokens or 128_000) - REPLY_TOKENS) * CHARS_PER_TOKEN * 0.9)
    cap = max(800, int(limit * 0.15))
    tail = [{"role": "user", "content": n} for n in notes]
    per_turn = [turn_messages(t, cap) for t in turns]
    budget = limit - _size(head) - _size(tail)
    trimmed = {"shortened": 0, "dropped": 0}
    # 1. shorten the oldest tool outputs, newest turns untouched
    i = 0
    while sum(_size(m) for m in per_turn) > budget and i < max(0, len(per_turn) - KEEP_RECENT_TURNS):
        for m in per_turn[i]:
            if m["role"] == "tool" and len(m["content"]) > 200:
                m["content"] = m["content"][:150] + " [... output elided to fit the context ...]"
                trimmed["shortened"] += 1
        i += 1
    # 2. drop the oldest whole turns (a reply and its results go together)
    while sum(_size(m) for m in per_turn) > budget and len(per_turn) > 1:
        per_turn.pop(0)
        trimmed["dropped"] += 1
    body = [m for ms in per_turn for m in ms]
    if trimmed["dropped"]:
        body.insert(0, {"role": "user", "content": f"[{trimmed['dropped']} earlier turn(s) are omitted to fit the "
                                                   "context; NOTES.md and the files hold what was done]"})
    return head + body + tail, trimmed


def reminder(turn: int, spent, budgets, elapsed_s: float) -> str:
    return (f"Reminder: turn {turn} of {budgets.max_steps}; {elapsed_s / 60:.0f} min of "
            f"{budgets.max_agent_s / 60:.0f} min used. Keep NOTES.md current and long work in jobs; "
            "the loop ends only when you call submit (or the budget runs out).")


WRAP_UP = ("About 10% of the budget remains. Wrap up now: make sure `REPRO_SMOKE=1 bash reproduce.sh` passes, "
           "write what is done and not done in README.md, then call submit.")
NUDGE = "Please continue: reply with a tool call (the loop only ends when you call submit)."
