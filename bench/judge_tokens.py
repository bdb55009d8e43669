"""Billed judge input tokens: our judge vs PaperBench's SimpleJudge, on a real rubric.

Offline, no model: our judge runs for real (graders.judge.grade_submission) against a
recording model that returns well-formed verdicts, and every request it makes is tokenised
(o200k_base via bpe_openai). SimpleJudge is re-implemented at the prompt-assembly level from
paperbench/judge/simple.py: per leaf, (1) a file-ranking call with the paper, the criterion and
the file tree, (2) a grading call with the paper, the top-10 files, reproduce.sh (+ log for
Code Execution / Result Analysis), the preceding criteria and the criterion, (3) a parse call
that turns the free-text answer into JSON. Its constant prompts are stand-ins of similar length
(the originals are not vendored here); they are small next to the paper. So the SimpleJudge side is
a stand-in, not PaperBench's SimpleJudge run: the output says so on its first line. The stand-in
sends the paper, the top-10 files and reproduce.log whole (whatever context fitting the real one
does is not modelled).

Which part of the saving comes from capped evidence: our judge grades the same submission three
times in the run, with the caps as shipped (JudgeConfig: paper at ``paper_chars``, evidence at
EvidenceLimits: per file, in all, file count, log head and tail), with the evidence caps off, and
with the paper cap off too. SimpleJudge / ours-uncapped is the part from the judge's structure
(sibling leaves graded in one call on a shared prefix, no per-leaf ranking and parse calls); the
two cap steps are the parts from the capped paper and the capped evidence. The factors multiply
to the figure, and the tokens saved add up to the saving. ``--log-lines`` grows reproduce.log
(default 600 lines, under the log cap) to see the log cap bite.

Prefix caching is priced as providers do: a request's leading messages identical to an earlier
request's are cached if that prefix is >= 1024 tokens, counted in 128-token blocks, and billed
at a fraction r of the input price (r = 0.1 Anthropic/OpenAI newest, 0.25, 0.5 OpenAI older).
No cache expiry is modelled (grading runs take minutes). Output tokens are not counted.

The figure is like for like only: SimpleJudge/ours with neither side cached, and with both sides
cached at the same price r. "Ours cached vs SimpleJudge uncached" mixes cache states; it is
printed last as a secondary line, labelled as such, and is never the figure.

    python bench/judge_tokens.py [--paper rice] [--data /work/shared/paperbench] [--log-lines 600] [--json]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bpe_openai import get_encoding  # noqa: E402
from bpe_openai.errors import TokenLimitError  # noqa: E402

import graders.judge as judge_module  # noqa: E402
from graders.aggregate import aggregate  # noqa: E402
from graders.evidence import EvidenceLimits  # noqa: E402
from graders.judge import JudgeConfig, grade_submission  # noqa: E402
from graders.rubric import GradedTaskNode, TaskNode, load_rubric  # noqa: E402

ENC = get_encoding("o200k_base")
MSG_OVERHEAD = 4  # tokens per chat message (role and separators)
_tok_cache: dict[str, int] = {}


def _encode_len(text: str) -> int:
    try:
        return len(ENC.encode(text, disallowed_special=()))
    except TokenLimitError:  # > 200,000 tokens in one piece (a long log of numbers): halve it
        half = len(text) // 2
        return _encode_len(text[:half]) + _encode_len(text[half:])


def ntok(text: str) -> int:
    key = hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()
    if key not in _tok_cache:
        n = 0
        for i in range(0, len(text), 500_000):  # the encoder refuses > 1M chars at once
            n += _encode_len(text[i:i + 500_000])
        _tok_cache[key] = n
    return _tok_cache[key]


# ---------------------------------------------------------------- billing with prefix caching
class Biller:
    def __init__(self) -> None:
        self.seen: set[tuple[str, ...]] = set()
        self.requests = 0
        self.total = 0
        self.cached = 0

    def bill(self, messages: list[dict]) -> None:
        hashes = [hashlib.sha1((m["role"] + "\0" + m["content"]).encode()).hexdigest() for m in messages]
        sizes = [ntok(m["content"]) + MSG_OVERHEAD for m in messages]
        prefix_tokens = 0
        for i in range(len(messages), 0, -1):
            if tuple(hashes[:i]) in self.seen:
                prefix_tokens = sum(sizes[:i])
                break
        cached = (prefix_tokens // 128) * 128 if prefix_tokens >= 1024 else 0
        for i in range(1, len(messages) + 1):
            self.seen.add(tuple(hashes[:i]))
        self.requests += 1
        self.total += sum(sizes)
        self.cached += min(cached, sum(sizes))

    def billed(self, r: float) -> float:
        return (self.total - self.cached) + r * self.cached


# ---------------------------------------------------------------- synthetic submission
def words_of(rubric: TaskNode) -> list[str]:
    vocab = re.findall(r"[A-Za-z][A-Za-z\-]{3,}", " ".join(n.requirements for n in rubric.walk()))
    return sorted(set(w.lower() for w in vocab))


def synthetic_paper(rubric: TaskNode, target_tokens: int = 40_000) -> str:
    rng = random.Random(1)
    vocab = words_of(rubric)
    reqs = [n.requirements for n in rubric.walk()]
    parts = [f"# {rubric.requirements}\n\n## Abstract\n"]
    while ntok("".join(parts)) < target_tokens:
        for _ in range(40):
            if rng.random() < 0.3:
                parts.append(rng.choice(reqs) + " ")
            else:
                s = " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 22)))
                parts.append(s.capitalize() + f" ({rng.randint(1, 99)}.{rng.randint(0, 9)}%). ")
        parts.append(f"\n\n## Section {len(parts) // 40}\n")
    return "".join(parts)


def synthetic_submission(root: Path, rubric: TaskNode, start: float, log_lines: int = 600) -> tuple[Path, Path]:
    rng = random.Random(2)
    vocab = [w.replace("-", "_") for w in words_of(rubric)]
    sub = root / "submission"
    files: dict[str, str] = {}
    for i in range(28):
        names = rng.sample(vocab, 12)
        lines = [f'"""Module {i}: {" ".join(rng.sample(vocab, 8))}."""', "import torch", "import numpy as np", ""]
        for j, name in enumerate(names):
            lines += [f"def {name}_{j}(x, cfg):",
                      f'    """Compute {" ".join(rng.sample(vocab, 6))}."""',
                      f"    y = x * cfg.get('{rng.choice(vocab)}', {rng.random():.3f})",
                      f"    for step in range(cfg.get('steps', {rng.randint(10, 500)})):",
                      f"        y = torch.nn.functional.relu(y) + {rng.random():.4f} * y.mean()",
                      "    return y", ""]
        files[f"src/{'models' if i % 3 == 0 else 'train' if i % 3 == 1 else 'eval'}/m{i:02d}.py"] = "\n".join(lines)
    files["README.md"] = "# Reproduction\n\n" + "\n".join(f"- {n.requirements}" for n in rubric.leaves()[:25])
    files["reproduce.sh"] = "#!/bin/bash\nset -e\npython -m src.train.m01\npython -m src.eval.m02 > results/metrics.json\n"
    files["configs/default.yaml"] = "\n".join(f"{w}: {rng.random():.3f}" for w in rng.sample(vocab, 40))
    for rel, text in files.items():
        p = sub / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    rep = root / "reproduction"
    for rel, text in files.items():
        p = rep / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.utime(p, (start - 600, start - 600))
    log = "\n".join(f"[step {k}] loss {1 / (k + 1):.4f} {rng.choice(vocab)} {rng.random():.4f}"
                    for k in range(log_lines))
    outputs = {"reproduce.log": log,
               "results/metrics.json": json.dumps({w: round(rng.random(), 4) for w in rng.sample(vocab, 30)}, indent=1),
               "results/table1.csv": "\n".join(",".join(f"{rng.random():.3f}" for _ in range(6)) for _ in range(20))}
    for rel, text in outputs.items():
        p = rep / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.utime(p, (start + 60, start + 60))
    return sub, rep


# ---------------------------------------------------------------- our judge
class RecordingJudge:
    name = "bench-judge"

    def __init__(self) -> None:
        self.requests: list[list[dict]] = []

    def complete(self, messages, *, schema=None, temperature=0.0, seed=None, max_tokens=None):
        self.requests.append(messages)
        keys = re.findall(r"^\[(L\d+)\] ", messages[2]["content"], re.MULTILINE)
        text = json.dumps({"verdicts": [{"key": k, "explanation": "ok", "score": 1} for k in keys]})

        class C:
            pass
        c = C()
        c.text, c.parsed, c.refusal, c.finish_reason, c.usage, c.model = text, json.loads(text), None, "stop", None, self.name
        return c


# ---------------------------------------------------------------- SimpleJudge prompt assembly
SJ_JUDGE_PROMPT = ("You are a judge evaluating an attempt to reproduce a research paper. " * 30).strip()  # ~450 tok
SJ_RANK_PROMPT = ("You rank the files of a submission by relevance to a grading criterion. " * 10).strip()
SJ_GRADING_PROMPT = ("Explain your reasoning, then give a score of 0 or 1 and say whether it is valid. " * 8).strip()
SJ_PARSE_PROMPT = ("You are given a judge's response; extract valid_score, score and explanation as JSON. " * 5).strip()
SJ_QUESTIONS = {
    "Code Development": "Does the code in the submission contain a correct implementation of this?",
    "Code Execution": "Does running the reproduce.sh script lead to this being successfully executed?",
    "Result Analysis": "Does the reproduce.sh script lead to results that match the criterion?",
}
SJ_RESPONSE_TOKENS = "word " * 350  # the free-text judge answer fed to the parse call (~350 tokens)


def simple_judge_requests(rubric: TaskNode, paper: str, sub: Path, rep: Path, start: float) -> list[list[dict]]:
    code_exts = {".py", ".sh", ".yaml", ".json", ".md", ".txt"}
    code = {p.relative_to(sub).as_posix(): p.read_text() for p in sorted(sub.rglob("*"))
            if p.is_file() and p.suffix in code_exts}
    results = {p.relative_to(rep).as_posix(): p.read_text() for p in sorted(rep.rglob("*"))
               if p.is_file() and (p.suffix in {".md", ".txt"} or p.stat().st_mtime >= start)
               and p.name != "reproduce.log"}
    repro_sh = (sub / "reproduce.sh").read_text()
    log = (rep / "reproduce.log").read_text()
    addendum = "(NO ADDENDUM GIVEN)"

    def tree(files):
        return "\n".join(f"├── {f}" for f in files)

    def top10(req, files):
        q = set(re.findall(r"[a-z_]{4,}", req.lower().replace("-", "_")))
        ranked = sorted(files, key=lambda f: (-len(q & set(re.findall(r"[a-z_]{4,}", files[f].lower()))), f))
        return ranked[:10]

    parents: dict[str, list[TaskNode]] = {}

    def chain(n: TaskNode, path: list[TaskNode]) -> None:
        parents[n.id] = path
        for c in n.sub_tasks:
            chain(c, path + [n])
    chain(rubric, [])

    out: list[list[dict]] = []
    for leaf in rubric.leaves():
        cat = leaf.task_category
        pool = results if cat == "Result Analysis" else code
        out.append([
            {"role": "system", "content": SJ_RANK_PROMPT},
            {"role": "user", "content": f"The paper is below:\n<paper>\n{paper}\n</paper>"},
            {"role": "user", "content": f"...addendum...\n<addendum>\n{addendum}\n</addendum>"},
            {"role": "user", "content": f"Here is the criterion that you are grading:\n<criterion>\n{leaf.requirements}\n</criterion>"},
            {"role": "user", "content": f"Here are the files in the submission attempt:\n\nDirectory structure:\n{tree(pool)}\n\n"
                                        "Now return a list of the 10 most relevant files in order of relevance."},
        ])
        files = "\n\n".join(f"<file>\n<path>{f}</path>\n<content>\n{pool[f]}\n</content>\n</file>"
                            for f in top10(leaf.requirements, pool))
        repro = [{"role": "user", "content": f"Here is the `reproduce.sh` provided in the submission, if any:\n<reproduce.sh>\n{repro_sh}\n</reproduce.sh>"}]
        if cat != "Code Development":
            repro.append({"role": "user", "content": f"Here is the `reproduce.log` provided in the submission, if any:\n<reproduce.log>\n{log}\n</reproduce.log>"})
        preceding = "".join(f" -> {p.requirements}\n" for p in parents[leaf.id])
        out.append([
            {"role": "system", "content": SJ_JUDGE_PROMPT},
            {"role": "user", "content": f"The paper is below:\n{paper}"},
            {"role": "user", "content": f"...addendum...\n<addendum>\n{addendum}\n</addendum>"},
            {"role": "user", "content": f"Here are the most relevant files included in the submission attempt, concatenated:\n<files>\n{files}\n</files>"},
            *repro,
            {"role": "user", "content": f"Preceding criteria:\n{preceding}\nCriterion: {leaf.requirements}\n"
                                        f"Category: {cat}. {SJ_QUESTIONS.get(cat, '')}"},
            {"role": "user", "content": SJ_GRADING_PROMPT},
        ])
        out.append([{"role": "system", "content": SJ_PARSE_PROMPT},
                    {"role": "user", "content": SJ_RESPONSE_TOKENS}])
    return out


# ---------------------------------------------------------------- caps on and off
SHIPPED = JudgeConfig()


def variants(paper: str, *dirs: Path) -> dict[str, JudgeConfig]:
    """Our judge's configs: caps as shipped, evidence caps off, paper cap off too. "Off" = caps just
    above what this paper and these files hold (the evidence reader allocates its cap up front)."""
    files = [p for d in dirs for p in d.rglob("*") if p.is_file()]
    biggest = max(p.stat().st_size for p in files) + 1
    whole = sum(p.stat().st_size for p in files) + 1
    evidence_off = dataclasses.replace(SHIPPED, limits=dataclasses.replace(
        SHIPPED.limits, per_file_chars=biggest, total_chars=whole, max_files=len(files) + 1, log_chars=biggest))
    return {"capped": SHIPPED, "evidence_uncapped": evidence_off,
            "uncapped": dataclasses.replace(evidence_off, paper_chars=len(paper) + 1)}


def caps_text(limits: EvidenceLimits, paper_chars: int) -> str:
    return (f"paper {paper_chars:,} chars; evidence {limits.per_file_chars:,} chars a file, {limits.total_chars:,} "
            f"in all, {limits.max_files} files, reproduce.log {limits.log_chars:,} chars head and tail")


# ---------------------------------------------------------------- main
def time_aggregation(data: Path) -> tuple[float, int] | None:
    files = sorted((data / "rubrics").glob("*/rubric.json"))
    if not files:
        return None

    def graded(n: TaskNode, i=[0]) -> GradedTaskNode:
        i[0] += 1
        return GradedTaskNode.from_task(n, score=float(i[0] % 2), valid_score=True, explanation="",
                                        sub_tasks=[graded(c) for c in n.sub_tasks])
    trees = [graded(load_rubric(f, allow_duplicate_ids=True)) for f in files]
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for tr in trees:
            aggregate(tr)
        best = min(best, time.perf_counter() - t)
    return best, len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("REPRO_PAPERBENCH_DIR", "/work/shared/paperbench")))
    ap.add_argument("--paper", default="rice", help="which PaperBench rubric to grade")
    ap.add_argument("--log-lines", type=int, default=600, help="lines of the synthetic reproduce.log")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rubric = load_rubric(args.data / "rubrics" / args.paper / "rubric.json", allow_duplicate_ids=True)
    paper = synthetic_paper(rubric)
    start = time.time() - 3600
    with tempfile.TemporaryDirectory() as tmp:
        sub, rep = synthetic_submission(Path(tmp), rubric, start, args.log_lines)
        billers: dict[str, Biller] = {}
        # one fixed fence nonce (new_nonce()'s shape, 16 hex) for the three gradings: a drawn one tokenises
        # differently from draw to draw (the figure moved by ~0.1x between runs) and between the variants
        nonce = hashlib.sha256(b"bench/judge_tokens.py").hexdigest()[:16]
        drawn, judge_module.new_nonce = judge_module.new_nonce, lambda: nonce
        try:
            gradings = {}
            for variant, cfg in variants(paper, sub, rep).items():
                judge = RecordingJudge()
                gradings[variant] = (judge, grade_submission(rubric, submission_dir=sub, reproduction_dir=rep,
                                                             start_time=start, paper_text=paper, model=judge,
                                                             config=cfg))
        finally:
            judge_module.new_nonce = drawn
        for variant, (judge, g) in gradings.items():
            if variant == "capped":
                graded = g
            billers[variant] = Biller()
            for m in judge.requests:
                billers[variant].bill(m)
        sj = simple_judge_requests(rubric, paper, sub, rep, start)
        n_files = sum(1 for p in sub.rglob("*") if p.is_file())
        log_chars = len((rep / "reproduce.log").read_text())
    ours, theirs = billers["capped"], Biller()
    for m in sj:
        theirs.bill(m)
    leaves = len(rubric.leaves())
    rows = {"paper": args.paper, "leaves": leaves, "paper_tokens": ntok(paper), "submission_files": n_files,
            "ours_requests": ours.requests, "simplejudge_requests": theirs.requests,
            "ours_uncached": ours.total, "simplejudge_uncached": theirs.total,
            "ratio_uncached": theirs.total / ours.total}
    for r in (0.1, 0.25, 0.5):
        rows[f"ours_billed_r{r}"] = ours.billed(r)
        rows[f"simplejudge_billed_r{r}"] = theirs.billed(r)
        rows[f"ratio_cached_r{r}"] = theirs.billed(r) / ours.billed(r)
    rows["headline"] = {"uncached_vs_uncached": rows["ratio_uncached"],
                        **{f"cached_vs_cached_r{r}": rows[f"ratio_cached_r{r}"] for r in (0.1, 0.25, 0.5)}}
    # secondary, NOT like for like (mixed cache states): never the figure
    rows["secondary_mixed_ours_cached_r0.1_vs_simplejudge_uncached"] = theirs.total / ours.billed(0.1)
    rows["graded_score"] = graded.score
    # where the saving comes from: SJ/ours = SJ/uncapped (structure) x uncapped/evidence_uncapped (paper cap)
    #                                        x evidence_uncapped/capped (evidence caps)
    split = {}
    for label, r in (("uncached", None), ("cached_r0.1", 0.1)):
        def cost(b: Biller) -> float:
            return b.total if r is None else b.billed(r)
        un, ev, cap, sjc = (cost(billers["uncapped"]), cost(billers["evidence_uncapped"]), cost(ours), cost(theirs))
        split[label] = {"ours_uncapped": un, "ours_evidence_uncapped": ev, "ours_capped": cap, "simplejudge": sjc,
                        "factor_structure": sjc / un, "factor_paper_cap": un / ev, "factor_evidence_cap": ev / cap,
                        "saved_structure": sjc - un, "saved_paper_cap": un - ev, "saved_evidence_cap": ev - cap}
    rows["saving_split"] = split
    rows["simplejudge_is_stand_in"] = True
    agg = time_aggregation(args.data)
    if agg:
        rows["aggregate_all_rubrics_ms"] = agg[0] * 1000
        rows["aggregate_rubrics"] = agg[1]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("SimpleJudge here is a STAND-IN, not PaperBench's SimpleJudge: its requests re-assembled from "
          "paperbench/judge/simple.py, its constant prompts stand-ins of similar length (the originals are not "
          "vendored); paper, top-10 files and reproduce.log sent whole")
    print(f"rubric {args.paper}: {leaves} leaves; paper {rows['paper_tokens']:,} tokens; {n_files} submission files; "
          f"reproduce.log {args.log_lines} lines, {log_chars:,} chars")
    print(f"{'':40}{'ours':>14}{'SimpleJudge':>14}{'ratio':>8}")
    print(f"{'requests':40}{ours.requests:>14,}{theirs.requests:>14,}{theirs.requests / ours.requests:>8.1f}")
    print(f"{'input tokens, both uncached':40}{ours.total:>14,}{theirs.total:>14,}{rows['ratio_uncached']:>8.1f}")
    for r in (0.1, 0.25, 0.5):
        print(f"{f'billed, both prefix-cached at {int(r * 100)}% price':40}{ours.billed(r):>14,.0f}"
              f"{theirs.billed(r):>14,.0f}{rows[f'ratio_cached_r{r}']:>8.1f}")
    if agg:
        print(f"aggregate() over all {agg[1]} rubrics: {agg[0] * 1000:.1f} ms")
    print("figure (like for like, SimpleJudge/ours input tokens): "
          f"uncached vs uncached {rows['ratio_uncached']:.1f}x; cached vs cached "
          + ", ".join(f"{rows[f'ratio_cached_r{r}']:.1f}x at {int(r * 100)}%" for r in (0.1, 0.25, 0.5)))
    print("where the saving comes from (our judge graded three times in this run: caps as shipped, evidence caps "
          "off, paper cap off too; SimpleJudge stand-in as above):")
    print(f"  caps as shipped: {caps_text(SHIPPED.limits, SHIPPED.paper_chars)}")
    print(f"  {'':44}{'uncached':>14}{'cached, 10%':>14}")
    for key, what in (("ours_uncapped", "ours, no caps"),
                      ("ours_evidence_uncapped", "ours, paper capped, evidence whole"),
                      ("ours_capped", "ours, caps as shipped"), ("simplejudge", "SimpleJudge stand-in")):
        print(f"  {what:44}{split['uncached'][key]:>14,.0f}{split['cached_r0.1'][key]:>14,.0f}")
    for key, what in (("structure", "judge structure (SimpleJudge / ours no caps)"),
                      ("paper_cap", "capped paper (no caps / paper capped)"),
                      ("evidence_cap", "capped evidence (paper capped / as shipped)")):
        u, c = split["uncached"], split["cached_r0.1"]
        print(f"  {what:44}{u['factor_' + key]:>13.2f}x{c['factor_' + key]:>13.2f}x   tokens saved "
              f"{u['saved_' + key]:,.0f} ({u['saved_' + key] / (u['simplejudge'] - u['ours_capped']):.1%} of the "
              "uncached saving)")
    print("  (the three factors multiply to the figure; the tokens saved add up to the saving)")
    print("secondary, NOT like for like (mixed cache states, not the figure): ours cached at 10% vs "
          f"SimpleJudge uncached {rows['secondary_mixed_ours_cached_r0.1_vs_simplejudge_uncached']:.1f}x")


if __name__ == "__main__":
    main()
