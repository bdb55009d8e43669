"""The one budget guard: every router and the tool loop ask it, and it alone knows the limits.

Prices live in agent.config (Budgets.prices): the stop decision and the report's cost use the
same table, so they can never disagree.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from agent.config import Budgets

WRAP_UP_SHARE = 0.9  # past this share of any budget the agent is told to wrap up


@dataclass(frozen=True)
class Spent:
    """Shares of each budget used, and the exit a spent one means."""

    shares: dict[str, float]
    detail: dict[str, str]

    @property
    def exceeded(self) -> tuple[str, str] | None:
        for kind, share in self.shares.items():
            if share >= 1.0:
                return kind, self.detail[kind]
        return None

    @property
    def nearly(self) -> bool:
        return max(self.shares.values(), default=0.0) >= WRAP_UP_SHARE


def share(used: float, limit: float) -> float:
    """used / limit; a zero limit is spent at once (never a division error)."""
    return used / limit if limit > 0 else float("inf")


def dollars(budgets: Budgets, model: str, usage: dict) -> float:
    return budgets.dollars(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))


def run_spent(state: dict, budgets: Budgets, model: str, now: float | None = None) -> Spent:
    """The whole run's budgets: agent tokens, dollars, wall time, sandbox time."""
    now = time.time() if now is None else now
    u = state.get("usage") or {}
    tokens = u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)
    wall = now - state.get("started_at", now)
    sandbox = state.get("sandbox_s", 0.0)
    shares = {"tokens": share(tokens, budgets.max_model_tokens), "time": share(wall, budgets.max_wall_s),
              "sandbox": share(sandbox, budgets.max_sandbox_s)}
    detail = {"tokens": f"model token budget exceeded ({tokens} > {budgets.max_model_tokens})",
              "time": f"wall-time budget exceeded ({wall:.0f} s > {budgets.max_wall_s:.0f} s)",
              "sandbox": f"sandbox-time budget exceeded ({sandbox:.0f} s > {budgets.max_sandbox_s:.0f} s)"}
    if budgets.max_dollars is not None:
        spent = dollars(budgets, model, u)
        shares["dollars"] = share(spent, budgets.max_dollars)
        detail["dollars"] = f"dollar budget exceeded (${spent:.4f} > ${budgets.max_dollars:.4f})"
    return Spent(shares, detail)


def loop_spent(state: dict, budgets: Budgets, model: str, now: float | None = None) -> Spent:
    """The tool loop's budgets: its steps and wall time, plus the run's."""
    now = time.time() if now is None else now
    run = run_spent(state, budgets, model, now)
    loop = state.get("loop") or {}
    turns = loop.get("turn", 0)
    elapsed = now - loop.get("started_at", now)
    loop_time = share(elapsed, budgets.max_agent_s)
    shares = {**run.shares, "steps": share(turns, budgets.max_steps), "time": max(run.shares["time"], loop_time)}
    detail = {**run.detail, "steps": f"step budget spent ({turns} of {budgets.max_steps} model turns)"}
    if loop_time >= run.shares["time"]:
        detail["time"] = f"the agent's time budget is spent ({elapsed:.0f} s of {budgets.max_agent_s:.0f} s)"
    return Spent(shares, detail)


def over_budget(state: dict, budgets: Budgets, model: str) -> str | None:
    hit = run_spent(state, budgets, model).exceeded
    return hit[1] if hit else None
