"""What the model is shown each turn: system + task (always), then the turns, trimmed to fit.

Trimming (PaperBench's and OpenHands' lesson): keep the system and task messages; first shorten
the oldest tool outputs, then drop the oldest whole turns — a call is never left without its
result — and say what was dropped; the agent's NOTES.md carries what matters across. Sizes are
tokens of the whole request as the model counts them (agent.llm.prompt_tokens, agent/tokens.py),
tool prompt and tool definitions included, with the completion reserve kept free.
"""
from __future__ import annotations

import bisect
import json
from typing import Callable

from agent.plan import Plan
from agent.prompts import render
from agent.recipes import registry
from graders.contract import CONTRACT_TEXT, claim_ids
from sandbox.broker import catalogue

#: the completion reserve: the max_tokens each turn asks for (agent/loop/nodes.py)
REPLY_TOKENS = 1200
#: an endpoint that does not say its window (OpenAIChatModel.context_tokens None)
DEFAULT_CONTEXT = 128_000
KEEP_RECENT_TURNS = 3
#: one tool output is cut to 15% of the budget, in characters at this rate: a training log's
#: numbers tokenize densest (SmolLM2 splits them into digits: 1.5 characters a token, prose 3.7)
RESULT_CHARS_PER_TOKEN = 2


def system_message(offline, brief: bool) -> dict:
    return {"role": "system", "content": render("agent_system.j2", offline=offline, brief=brief,
                                                contract=CONTRACT_TEXT)}


def shown_targets(plan: Plan, limit: int = 8) -> dict[str, list[tuple[int, object]]]:
    """Per experiment, its targets the task lists with their plan index (T1 is targets[0]): the first
    `limit`, and every one a claim cites wherever it stands (DistilBERT's IMDb cell was the 11th, the
    one its claims are about)."""
    cited = {(c.table, c.row, c.column) for claim in plan.claims for c in claim.cells}
    return {e.id: [(k, t) for k, t in enumerate(e.targets, 1) if k <= limit or (t.table, t.row, t.column) in cited]
            for e in plan.experiments}


def task_message(plan: Plan, paper, budget: str, brief: bool) -> dict:
    hyper = (f"{plan.hyper.epochs} epoch(s), batch size {plan.hyper.batch_size}, seed {plan.hyper.seed}"
             + (f", at most {plan.hyper.train_limit} training examples" if plan.hyper.train_limit else ""))
    return {"role": "user", "content": render(
        "agent_task.j2", title=paper.title, abstract=paper.abstract[:1500], experiments=plan.experiments,
        deviations=plan.deviations, hyper=hyper, recipes=", ".join(sorted(registry())),
        addendum=(plan.addendum or "")[:4000], budget=budget, brief=brief, shown=shown_targets(plan),
        claims=claim_ids(json.loads(plan.model_dump_json())),
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


def prompt_budget(context_tokens: int | None, reply_tokens: int = REPLY_TOKENS, scale: float = 1.0) -> int:
    """Prompt tokens a turn may use: the window less the completion reserve (``reply_tokens``, the
    max_tokens the loop asks for: a prompt that leaves less gets its reply cut off). ``scale`` < 1
    after an endpoint counted more than we did (the loop's trimmed retry)."""
    return max(256, int(((context_tokens or DEFAULT_CONTEXT) - reply_tokens) * scale))


def retry_budget(budget: int, sent: int, exc) -> int:
    """A tighter budget after the endpoint refused ``sent`` tokens (our count) as too long. When it
    says how many it counted and how many fit (ContextLengthExceeded's numbers), scale to that with
    a 10% margin; else halve. Always at most 3/4 of what was sent, so the retry is really shorter."""
    tighter = budget // 2
    if getattr(exc, "limit", None) and getattr(exc, "prompt", None):
        fit = exc.limit - (exc.completion if exc.completion is not None else REPLY_TOKENS)
        tighter = int(fit * sent / exc.prompt * 0.9)
    return max(128, min(tighter, int(sent * 0.75)))


def _shorten(msgs: list[dict]) -> int:
    n = 0
    for m in msgs:
        if m["role"] == "tool" and len(m["content"]) > 200:
            m["content"] = m["content"][:150] + " [... output elided to fit the context ...]"
            n += 1
    return n


def build_messages(head: list[dict], turns: list[dict], notes: list[str], budget: int,
                   count: Callable[[list[dict]], int]) -> tuple[list[dict], dict]:
    """head (system, task) + turns + this turn's notes, in at most ``budget`` prompt tokens as
    ``count`` counts the whole request (agent.llm.prompt_tokens: tool prompt and definitions too).

    Trimming, in order, until it fits: shorten the oldest tool outputs (the newest
    KEEP_RECENT_TURNS untouched), drop the oldest whole turns (a reply and its results go together)
    down to one, then shorten that one's outputs too. The least trimming that fits is found by
    bisection, so a long conversation is counted a few times, not once per step. Returns the
    messages and what was trimmed ({"shortened", "dropped", "tokens", "budget"}; "over" when even
    the most trimming does not fit: the endpoint will say so, and the loop retries tighter)."""
    cap = max(800, int(budget * 0.15 * RESULT_CHARS_PER_TOKEN))
    tail = [{"role": "user", "content": n} for n in notes]
    per_turn = [turn_messages(t, cap) for t in turns]
    n = len(per_turn)
    old = max(0, n - KEEP_RECENT_TURNS)
    levels = old + max(0, n - 1) + (1 if n else 0)

    def assemble(k: int) -> tuple[list[dict], dict]:
        body = [[dict(m) for m in ms] for ms in per_turn]
        trimmed = {"shortened": 0, "dropped": 0}
        for ms in body[:min(k, old)]:  # 1. the oldest tool outputs
            trimmed["shortened"] += _shorten(ms)
        drop = min(max(0, k - old), max(0, n - 1))  # 2. the oldest whole turns
        body, trimmed["dropped"] = body[drop:], drop
        if k == levels and n:  # 3. the newest turn's outputs too
            trimmed["shortened"] += _shorten(body[-1])
        flat = [m for ms in body for m in ms]
        if drop:
            flat.insert(0, {"role": "user", "content": f"[{drop} earlier turn(s) are omitted to fit the "
                                                       "context; NOTES.md and the files hold what was done]"})
        return head + flat + tail, trimmed

    sizes: dict[int, int] = {}

    def size(k: int) -> int:
        if k not in sizes:
            sizes[k] = count(assemble(k)[0])
        return sizes[k]

    k = bisect.bisect_left(range(levels + 1), True, key=lambda i: size(i) <= budget)
    while k <= levels and size(k) > budget:  # the omission note can make one level not monotone
        k += 1
    k = min(k, levels)
    msgs, trimmed = assemble(k)
    trimmed.update(tokens=size(k), budget=budget)
    if size(k) > budget:
        trimmed["over"] = size(k) - budget
    return msgs, trimmed


def reminder(turn: int, spent, budgets, elapsed_s: float) -> str:
    return (f"Reminder: turn {turn} of {budgets.max_steps}; {elapsed_s / 60:.0f} min of "
            f"{budgets.max_agent_s / 60:.0f} min used. Keep NOTES.md current and long work in jobs; "
            "the loop ends only when you call submit (or the budget runs out).")


WRAP_UP = ("About 10% of the budget remains. Wrap up now: make sure `REPRO_SMOKE=1 bash reproduce.sh` passes, "
           "write what is done and not done in README.md, then call submit.")
NUDGE = "Please continue: reply with a tool call (the loop only ends when you call submit)."
