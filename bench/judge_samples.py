"""What majority voting buys a small judge, and what it costs, measured side by side in one run.

    python bench/judge_samples.py [--k 3] [--cases demo-gold,demo-lora-dropped,demo-skips-full]

The same judge model (default: the embedded SmolLM2; --model/--base-url for another) grades the
same labelled cases (papers/judge-eval, labels known by construction) once with one sample per
group and once with k samples and a majority per leaf. Printed: macro-F1 of each, the F1 gain,
and the ratio of model calls and prompt tokens (the cost). A subset of cases keeps it to minutes
on two cores; the cases are named in the output.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graders.judge import JudgeConfig  # noqa: E402
from graders.judge_eval import measure_on_mutations  # noqa: E402
from graders.mutations import load_cases  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--cases", default="demo-gold,demo-lora-dropped,demo-skips-full")
    ap.add_argument("--model", default=None)
    ap.add_argument("--base-url", default=None)
    a = ap.parse_args()
    cases = [c for c in load_cases() if c.name in set(a.cases.split(","))]
    if a.model:
        from agent.llm import OpenAIChatModel

        judge, server = OpenAIChatModel(a.model, base_url=a.base_url), None
    else:
        from agent.llm import EmbeddedServer

        server = EmbeddedServer().start()
        judge = server.client()
    try:
        cfg = JudgeConfig.for_context(getattr(judge, "context_tokens", None))
        out = {}
        for k in (1, a.k):
            t0 = time.perf_counter()
            out[k] = measure_on_mutations(lambda case: judge, cases, config=cfg, samples=k)
            out[k]["seconds"] = time.perf_counter() - t0
            r = out[k]
            print(f"k={k}: macro-F1 {r['f1']:.3f} on {r['n']} leaves ({r['invalid']} invalid), {r['usage']['calls']} "
                  f"calls, {r['usage']['prompt_tokens']} prompt tokens, {r['seconds']:.0f} s", flush=True)
    finally:
        if server is not None:
            server.stop()
    one, many = out[1], out[a.k]
    print(f"cases: {', '.join(c.name for c in cases)}; judge {judge.name}")
    print(f"majority of {a.k} vs one sample: F1 {many['f1']:.3f} vs {one['f1']:.3f} ({many['f1'] - one['f1']:+.3f}); "
          f"cost {many['usage']['prompt_tokens'] / max(1, one['usage']['prompt_tokens']):.2f}x the prompt tokens, "
          f"{many['usage']['calls'] / max(1, one['usage']['calls']):.2f}x the calls, "
          f"{many['seconds'] / max(1e-9, one['seconds']):.2f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
