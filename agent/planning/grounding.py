"""Grounding: what the structured paper itself says, so a model's answer can be checked.

Experiments come from the paper's result rows (every method or configuration it reports numbers
for) — rows of result tables only: never a reference-list line, an equation fragment, a row of a
hyper-parameter or statistics table, a parameter count or a timing (``not_a_result``); target
numbers are always rows of ``paper.results`` with table/row/column/page provenance, their metric
named from the column (``metric_name``: BLEU, F1, MCC, …, never a default 'accuracy'); names of
models and datasets must occur in the paper's text.

A weak model (the embedded 135M one) picks among constrained options: its answer is completed
and mapped to recipes by the row patterns below. A capable model's answer is only validated
(``is_capable``): the stages keep its experiments, methods and recipes and note disagreements.
"""
from __future__ import annotations

import math
import re

from agent.plan import Reported
from papers.paper import Paper

MAX_CANDIDATES = 12
MAX_EXPERIMENTS = 8
#: a capable model sees many more of the paper's result rows (it plans from the whole paper), as
#: many as a third of its context holds (a row's line, with its cells, is about 250 characters)
MAX_CANDIDATES_CAPABLE, PER_TABLE_CAPABLE, CHARS_PER_CANDIDATE = 60, 12, 250
#: a capable model's context: characters per token (conservatively: tables and numbers tokenize
#: densely), the tokens of its reply, of the instructions and schema, and of an unsaid window
CHARS_PER_TOKEN, CAPABLE_REPLY_TOKENS, PROMPT_TOKENS, DEFAULT_CONTEXT_TOKENS = 3, 3000, 1500, 128_000


def prompt_chars(model) -> int:
    """Characters a capable model's planning prompt may hold (paper text and result rows)."""
    tokens = getattr(model, "context_tokens", None) or DEFAULT_CONTEXT_TOKENS
    return max(4_000, (tokens - CAPABLE_REPLY_TOKENS - PROMPT_TOKENS) * CHARS_PER_TOKEN)


def is_capable(model) -> bool:
    """A model that says it is not weak (agent.llm.OpenAIChatModel: any endpoint but the embedded
    SmolLM2-135M, which says ``weak = True``). Its plan is kept and validated, never rewritten. A
    model that says nothing (a test double) keeps the grounded path that completes and maps."""
    return getattr(model, "weak", None) is False

# Evidence that a paper uses a recipe's method: it must say so in its own words.
RECIPE_PATTERNS = {
    "rlhf": re.compile(r"\bRLHF\b|reinforcement learning from human feedback|\breward model|\bPPO\b|\bGRPO\b|"
                      r"proximal policy optim", re.I),
    "qlora": re.compile(r"\bQLoRA\b|4-bit (NF4|quanti)", re.I),
    "sft": re.compile(r"causal[- ]LM|language[- ]model(ing)? fine-?tun|next[- ]token|self-supervised fine-?tun|"
                      r"supervised fine-?tuning \(SFT\)|\bSFT\b", re.I),
    "dpo": re.compile(r"\bDPO\b|direct preference optim|preference (pairs|tuning|optimi)", re.I),
    "lora": re.compile(r"\bLoRA\b|low-rank adapt", re.I),
    "full": re.compile(r"full(y)?[ -]fine-?tun|fine-?tun\w* all|all (the )?(model )?(weights|parameters)", re.I),
    "head": re.compile(r"classifi\w+ head|last layers?\b|linear prob|only the (classifier|head)|"
                       r"frozen (encoder|backbone)|feature[- ]extract|head[- ]only", re.I),
}
# The same recipes named in a results row (short labels: "LoRA (r = 8)", "FT", "head only").
# A row is mapped to a recipe only when it names that recipe's method: "AdaLoRA" or "LoRA+PE" is not
# LoRA, "Variable FT" is not full fine-tuning, and a "(Frozen)" variant of some method is not the
# classifier-head recipe.
ROW_PATTERNS = {
    "rlhf": re.compile(r"\bRLHF\b|\bGRPO\b|\bPPO\b|after RL\b", re.I),
    "qlora": re.compile(r"(?<![a-z])qlora(?![a-z+])", re.I),
    "sft": re.compile(r"\bSFT\b|causal|language model", re.I),
    "dpo": re.compile(r"\bDPO\b|preference", re.I),
    "lora": re.compile(r"(?<![a-z])lora(?![a-z+])", re.I),
    "full": re.compile(r"\bfull(y)?\b|(?<!variable )\bFT\b|fine-?tun\w* all", re.I),
    "head": re.compile(r"classifi\w* head|\bhead\b(?!\s*\+)|last layers?\b|linear[- ]prob", re.I),
}
# a reward model's own number (its pairwise accuracy): a stage of the RLHF recipe, whatever the row calls
# the model ("MiniLM-L6, scalar head" is not the classifier-head recipe)
REWARD_MODEL = re.compile(r"reward[- ]model|pairwise acc", re.I)
BEFORE = re.compile(r"before|no fine-?tun|zero-?shot|untuned|random|pre-?trained only", re.I)
# a row that cites another paper ("ByteNet [18]", "Zhu et al. (2013)") reports that paper's number
CITED = re.compile(r"\[\d+(?:\s*[,–-]\s*\d+)*\]|\bet al\b|\((?:[A-Z][^()]*,?\s)?(?:19|20)\d\d[a-z]?\)?")
SCORE = re.compile(r"acc|error|\bf1\b|score|perplex|win rate|reward|bleu|rouge|\bem\b|matthews|corr|mnli|sst|"
                   r"glue|squad|qnli|qqp|rte|mrpc|cola|sts", re.I)
# The metric a number is reported in, by the words of its column (then its unit, then the caption):
# the contract's own names where it has them (accuracy, f1, error, perplexity, mean reward), else
# the name papers print. Nothing is 'accuracy' unless something says so: an unnamed score is "score".
METRIC_WORDS = [
    ("mean reward", re.compile(r"mean reward|\breward\b(?! acc)", re.I)),
    ("win rate", re.compile(r"win[- ]?rate", re.I)),
    ("error", re.compile(r"\berr(or)?s?\b|error rate", re.I)),
    ("f1", re.compile(r"\bf1\b|f-?score|f-measure", re.I)),
    ("perplexity", re.compile(r"perplex|\bppl\b", re.I)),
    ("BLEU", re.compile(r"\bbleu", re.I)),
    ("ROUGE-L", re.compile(r"\brouge-?l\b", re.I)),
    ("ROUGE", re.compile(r"\brouge|\bR1/R2/RL\b", re.I)),
    ("METEOR", re.compile(r"\bmet(eor)?\b", re.I)), ("NIST", re.compile(r"\bnist\b", re.I)),
    ("TER", re.compile(r"\bter\b", re.I)), ("CIDEr", re.compile(r"\bcider\b", re.I)),
    ("MCC", re.compile(r"\bmcc\b|matthew", re.I)),
    ("Pearson", re.compile(r"pearson", re.I)), ("Spearman", re.compile(r"spearman", re.I)),
    ("exact match", re.compile(r"\bem\b|exact[- ]match", re.I)),
    ("precision", re.compile(r"\bprecision\b", re.I)), ("recall", re.compile(r"\brecall\b", re.I)),
    ("accuracy", re.compile(r"acc", re.I)),
]
UNNAMED_METRIC = "score"
# numbers that are not results: what a result table reports beside its scores
_COST_UNITS = {"parameters", "seconds", "FLOPs", "loss"}
_PARAM_COUNT = re.compile(r"\bparam|\|\s*[θΘ]\s*\||#\s*(trainable|params?)", re.I)
_PARAM_VALUE = re.compile(r"^\s*[\d.,]+\s*[KMB]\s*$")
_TIMING = re.compile(r"\btime\b|latency|\bms\b|millisecond|\bseconds?\b|\bsec\b|\bhours?\b|gpu[- ]?h|"
                     r"throughput|speed|wall[- ]?clock|\bflops\b|training cost", re.I)
_TIME_IN_LABEL = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|secs|seconds|min|h|hrs?)\b")
_HP_NAMES = re.compile(r"epoch|learning rate|\blr\b|batch size|warm-?up|dropout|weight decay|\b#?\s*steps\b|"
                       r"optimi[sz]er|seq(uence)? len|max(imum)? len", re.I)
_STATS_COLUMN = re.compile(r"#\s*(classes|examples|train|test|dev|samples|prompts)|^\s*classes\s*$|\bcount\b|"
                           r"^\s*size\s*$|average lengths?|train(ing)? examples|\bexamples\b|num(ber)? of", re.I)
# a column of differences between runs ("Variation on GLUE macro-score", "Δ"): no run's own number
_CHANGE_COLUMN = re.compile(r"\b(?:variation|delta|change|relative|difference|improvement|gain|drop)\b|Δ", re.I)
# a table whose caption says it holds settings or statistics, and names no score
_NOT_RESULTS_CAPTION = re.compile(
    r"statistic|dataset sizes?|sizes of|number of (training )?(examples|epochs|prompts|samples|parameters)|"
    r"search space|options for|hyper-?parameters? (we )?used|hyper-?parameters for|the hyper-?parameters|"
    r"\blengths?\b|demographic|survey|annotations|per customer|distribution of|latency|inference time|"
    r"complexity|throughput|(wall|training|run)[- ]?(clock )?time", re.I)
_SCORE_CAPTION = re.compile(r"\bacc(uracy)?\b|\bf1\b|bleu|rouge|error rate|perplexit|\bresults?\b|"
                            r"performance|score|correlation|win rate", re.I)
# equation fragments: symbols of formulas in a row label ("∅- Lcos - Lmlm", "||U ⊤WqV ⊤||F =")
_EQUATION = re.compile(r"[∅⊤∇∑Σ∂≈≤≥‖∈∀∃√∞⊕⊗]|\|\||=\s*$|^[\W\d_]*$|^\s*\d+(\.\d+)?\s*e\s*[-+]?\d+\s*$")
# a line of a reference list: an author list, or a citation with its venue
_AUTHOR_LIST = re.compile(r"^(?:[A-Z][a-z]{1,12}\s?[-–,]\s?){4,}")  # "Gpu-Lu-Zhong-Xin-Yan-…"
_CITATION = re.compile(r"\bet al\b.*\b(19|20)\d\d\b.*\b(In |Proceedings|arXiv|Conference|Journal|pp\.|Vol\.|"
                       r"URL|https?:|doi)|\bIn Proceedings\b|\barXiv preprint\b|\barXiv:\d", re.I)
# a column that names a method rather than a measurement (tables with datasets as rows)
METHODISH = re.compile(r"adapter|fine-?tun|\bFT\b|lora|baseline|head|prob|frozen|prompt|prefix|bitfit|distil|"
                       r"bert|gpt|roberta|\bt5\b|lstm|transformer|\bours\b|model", re.I)
_MODEL_NAMES = re.compile(
    r"\b(BERT[- ]?(?:base|large)|RoBERTa(?:[- ](?:base|large))?|DeBERTa(?:[- ]?(?:XXL|XL|large|base|V[23]))?|"
    r"DistilBERT|ALBERT|XLNet|ELECTRA|"
    r"GPT-?[234](?:[- ](?:small|medium|large|xl))?|T5(?:[- ](?:small|base|large))?|Llama[- ]?\d[\w.-]*|"
    r"Mistral[- ]7B|SmolLM2?(?:-\d+M)?(?:-Instruct)?|(?:all-)?MiniLM(?:-L\d+(?:-H\d+)?)?(?:-v2)?|BERT)\b", re.I)
_DATASET_NAMES = re.compile(
    r"\b(IMDb|SST-?[25]|Yelp(?: (?:P\.|F\.|Polarity|Full))?|AG[’'`]?s News|DBPedia|TREC|Yahoo!? Answers|"
    r"Sogou News|MNLI|QNLI|QQP|MRPC|CoLA|STS-B|SQuAD|Amazon Reviews|Rotten Tomatoes|Alpaca|HH-RLHF|"
    r"UltraFeedback|WikiText(?:-\d+)?|movie[- ]review snippets)\b", re.I)


def grounded_recipes(text: str) -> list[str]:
    """Recipes whose method the paper names in its own words."""
    return [m for m, pat in RECIPE_PATTERNS.items() if pat.search(text)]


def recipe_for(label: str) -> str | None:
    """The recipe a results row's label names (None: no tested starting point fits)."""
    if BEFORE.search(label):
        return None
    hits = [m for m, pat in ROW_PATTERNS.items() if pat.search(label)]
    return hits[0] if hits else None


def names_other_recipe(row: str, recipe: str) -> bool:
    """A result row named for a different recipe (e.g. 'head-only' offered as full's target)."""
    return any(ROW_PATTERNS[o].search(row) for o in ROW_PATTERNS if o != recipe) and not ROW_PATTERNS[recipe].search(row)


def _metric_in(text: str) -> str | None:
    """The metric named first in ``text`` ("SQuAD (EM/F1)": exact match, the cell's first number)."""
    hits = [(m.start(), i, name) for i, (name, pat) in enumerate(METRIC_WORDS) if (m := pat.search(text or ""))]
    return min(hits)[2] if hits else None


def caption_metrics(caption: str | None) -> tuple[dict[str, str], str | None]:
    """What a caption says each column's metric is ("Matthew's correlation for CoLA, Pearson
    correlation for STS-B, and accuracy for other tasks"; "MRPC and QQP are evaluated using F1"):
    ({normalised dataset: metric}, the metric for "other" tasks or None)."""
    per: dict[str, str] = {}
    default = None
    named_on: set[str] = set()  # metrics of "accuracy on WikiSQL and MultiNLI": the table's, when one
    for clause in re.split(r"[,;.]\s*|\band\s+(?=\w[\w’' -]*\b(?:for|on)\b)", caption or ""):
        m = re.search(r"(.+?)\s+(?:for|on)\s+(?:the\s+)?(.+)", clause)
        if m and (metric := _metric_in(m.group(1))):
            what = m.group(2).strip()
            if _dataset_like(what.split()[0]):
                per.setdefault(key(what.split()[0]), metric)
                named_on.add(metric)
            else:  # "for other tasks", "for additional classification tasks": the whole table's metric
                default = default or metric
        m = re.search(r"(.+?)\s+(?:is|are)\s+(?:evaluated|measured|scored|reported)\s+(?:using|with|by|in)\s+(.+)", clause)
        if m and (metric := _metric_in(m.group(2))):
            for name in re.split(r"\s*(?:,|\band\b)\s*", m.group(1)):
                if name.strip() and _dataset_like(name.split()[-1]):
                    per.setdefault(key(name.split()[-1]), metric)
                elif name.strip():
                    default = default or metric
    if default is None and len(named_on) == 1 and set(per.values()) == named_on:
        default = next(iter(named_on))
    return per, default


def _dataset_like(token: str) -> bool:
    """A benchmark's name as captions print it (MNLI, CoLA, STS-B, WikiSQL, SST-2), not a word."""
    return len(re.findall(r"[A-Z]", token)) >= 2 or bool(re.search(r"\d", token) and re.search(r"[A-Za-z]", token))


def key(text: str) -> str:
    """A name compared without case, spaces or punctuation ("RoBERTa-base" == "roberta base")."""
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


def metric_name(column: str, unit: str | None, caption: str | None = None, row: str = "") -> str:
    """The metric a number is reported in: named by its column ("BLEU / EN-DE", "Dev / EM"), else by
    what the caption says of that column ("Matthew's correlation for CoLA"), else by its row (tables
    with metrics as rows: "HellaSwag / accuracy"), else by its unit or the caption; "score" when
    nothing names it — never a default 'accuracy'. Where the caption names metrics per column, a
    column it does not name gets the caption's "other tasks" metric, not the caption's first."""
    if (name := _metric_in(column)) is not None:
        return name
    per, default = caption_metrics(caption)
    col = key(column)
    for what, metric in sorted(per.items(), key=lambda kv: -len(kv[0])):
        if what and (what == col or (len(what) >= 3 and col.startswith(what))):
            return metric
    if (name := _metric_in(row)) is not None:
        return name
    if per:
        return default or UNNAMED_METRIC
    return _metric_in(unit or "") or default or _metric_in(caption or "") or UNNAMED_METRIC


def _caption(paper: Paper | None, table: str) -> str | None:
    return next((t.caption for t in paper.tables if t.id == table), None) if paper is not None else None


def reported(r, paper: Paper | None = None) -> Reported:
    """A result row as a plan target, its metric named from its column (and the table's caption
    when the paper is given)."""
    return Reported(value=r.value, text=r.text, table=r.table, row=r.row, column=r.column, page=r.page,
                    metric=metric_name(r.column, r.unit_or_metric, _caption(paper, r.table), r.row))


def _reference_pages(paper: Paper) -> tuple[int, int] | None:
    """(first, last) pages wholly inside the reference list, or None."""
    secs = paper.sections
    for i, sec in enumerate(secs):
        if re.match(r"\s*(\d+\.?\s*)?(references|bibliography)\b", sec.title, re.I):
            end = next((x.page for x in secs[i + 1:] if x.page > sec.page), paper.pages + 1)
            return sec.page + 1, end - 1
    return None


def table_not_results(paper: Paper, table: str) -> str | None:
    """Why a table holds no results (its caption names settings or statistics and no score; it
    sits inside the reference list), or None."""
    t = next((x for x in paper.tables if x.id == table), None)
    caption = (t.caption if t else None) or ""
    if caption and _NOT_RESULTS_CAPTION.search(caption) and not _SCORE_CAPTION.search(caption):
        return f"a table of settings or statistics ({caption[:60]!r})"
    pages = _reference_pages(paper)
    if t is not None and pages and pages[0] <= t.page <= pages[1]:
        return "a table inside the reference list"
    return None


def not_a_result(paper: Paper | None, r) -> str | None:
    """Why a row of ``paper.results`` is no experiment's result: a reference-list line, an
    equation fragment, a label without words, a parameter count, a timing, a hyper-parameter or a
    dataset statistic, a row of a settings/statistics table. None: a result."""
    row, column, unit = r.row.strip(), r.column or "", r.unit_or_metric or ""
    if _AUTHOR_LIST.search(row) or _CITATION.search(row):
        return "a reference-list line"
    if _EQUATION.search(row):
        return "an equation fragment" if re.search(r"[A-Za-z]{2}", row) else "a row label without words"
    if unit == "parameters" or _PARAM_COUNT.search(row) or _PARAM_COUNT.search(column) or _PARAM_VALUE.match(r.text):
        return "a parameter count"
    if unit in ("seconds", "FLOPs") or _TIMING.search(column) or _TIME_IN_LABEL.search(row):
        return "a timing or a compute cost"
    if _HP_NAMES.search(column) or (_HP_NAMES.match(row) and len(row) < 30):
        return "a hyper-parameter"
    if _STATS_COLUMN.search(column):
        return "a dataset statistic"
    if _CHANGE_COLUMN.search(column):
        return "a difference between runs, not a run's number"
    if paper is not None and (why := table_not_results(paper, r.table)):
        return why
    return None


def find_reported(paper: Paper, key: str) -> Reported | None:
    """The paper's accuracy for a recipe's method (or 'before'), from its tables, with provenance."""
    pattern = BEFORE if key == "before" else ROW_PATTERNS[key]
    candidates = [r for r in paper.results if pattern.search(r.row) and _is_score(r, paper)]
    if key != "before":  # a 'before' row mentions 'fine-tuning' too; keep method rows clean
        candidates = [r for r in candidates if not BEFORE.search(r.row)]
    if key not in ("before", "rlhf"):  # a reward model's number is the RLHF run's, whatever its row says
        candidates = [r for r in candidates if not REWARD_MODEL.search(f"{r.row} {r.column}")]
    accurate = [r for r in candidates if re.search(r"acc", f"{r.column} {r.unit_or_metric or ''}", re.I)]
    pick = (accurate or candidates or [None])[0]
    return reported(pick, paper) if pick is not None else None


def _is_score(r, paper: Paper | None = None) -> bool:
    """A number that scores a method (not a parameter count, a timing, a setting or a statistic);
    its column, its unit or (tables with metrics as rows) its row names what it measures."""
    named = SCORE.search(f"{r.column} {r.unit_or_metric or ''}") or _metric_in(r.row)
    return bool(named) and (r.unit_or_metric or "") not in _COST_UNITS and not_a_result(paper, r) is None


def candidate_results(paper: Paper, limit: int = MAX_CANDIDATES, per_table_max: int = 4) -> list:
    """The paper's results worth showing the model, one per (table, row), as ids R1..Rn.

    Only rows of result tables that hold a score (``not_a_result``: no reference line, equation
    fragment, parameter count, timing, setting or statistic); rows named like a method, or like
    the paper's model, rank first. The ids are all the model may answer with: a target number can
    only ever be one of these rows."""
    title_words = {w.lower() for w in re.findall(r"[A-Za-z][\w-]{2,}", paper.title) if w[0].isupper()}
    captions = {t.id: (t.caption or "") for t in paper.tables}
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for i, r in enumerate(paper.results):
        if not _is_score(r, paper):
            continue
        score = 2
        score += bool(SCORE.search(captions.get(r.table, "")))
        score += bool(any(p.search(r.row) for p in ROW_PATTERNS.values()) or BEFORE.search(r.row))
        score += bool(any(w in r.row.lower() for w in title_words))
        score -= 2 * bool(CITED.search(r.row))  # the paper's own rows first: prior work is no experiment of it
        score -= 3 * bool(re.search(r"statistic|hyper-?param", captions.get(r.table, ""), re.I))
        key = (r.table, r.row)
        if key not in best or score > best[key][0]:
            best[key] = (score, i)
    per_table: dict[str, int] = {}
    chosen = []
    for score, i in sorted(best.values(), key=lambda v: (-v[0], v[1])):
        table = paper.results[i].table
        if per_table.get(table, 0) >= per_table_max:
            continue
        per_table[table] = per_table.get(table, 0) + 1
        chosen.append(i)
        if len(chosen) >= limit:
            break
    return [paper.results[i] for i in sorted(chosen)]


def candidates_for(paper: Paper, model) -> list:
    """The candidates a model is shown: a capable model many more (it plans from the whole paper)."""
    if is_capable(model):
        fits = prompt_chars(model) // 3 // CHARS_PER_CANDIDATE
        return candidate_results(paper, max(MAX_CANDIDATES, min(MAX_CANDIDATES_CAPABLE, fits)), PER_TABLE_CAPABLE)
    return candidate_results(paper)


def experiment_label(r) -> tuple[str, str | None]:
    """(what the result measures a method by, the dataset when the row names one instead):
    rows are usually methods; in tables with datasets as rows, the method is the column."""
    if METHODISH.search(r.column) and not METHODISH.search(r.row) and not BEFORE.search(r.row) \
            and not any(p.search(r.row) for p in ROW_PATTERNS.values()):
        return r.column.strip(), r.row.strip()
    return r.row.strip(), None


def row_cells(paper: Paper, r, limit: int = 12) -> list:
    """Every score the paper prints in a result's row for the same method (its other test sets and
    metrics: "SST-2", "MRPC"; "BLEU", "ROUGE-L"), the result first. In a table with datasets as rows
    and methods as columns, the method's own cell only."""
    label = experiment_label(r)
    same = [x for x in paper.results if x.table == r.table and x.row == r.row and x is not r
            and experiment_label(x) == label and _is_score(x, paper)]
    return ([r] + same)[:limit]


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s or "experiment")[:40].strip("-")


def _with_row_scores(paper: Paper, cands: list) -> list:
    """The candidates plus every other score the paper prints in their rows (a row's columns are
    often one method measured on several test sets: all are targets)."""
    rows = {(r.table, r.row) for r in cands}
    seen, out = set(), []
    for r in paper.results:
        if (r.table, r.row) in rows and (r.table, r.row, r.column) not in seen:
            seen.add((r.table, r.row, r.column))
            out.append(r)
    return out


def experiments_from_results(paper: Paper, cands: list) -> tuple[list[dict], list[Reported]]:
    """Every method or configuration the paper reports a score for among the candidates, grouped
    by its label, each with its targets; plus the 'before training' baseline's numbers."""
    groups: dict[str, dict] = {}
    before: list[Reported] = []
    for r in _with_row_scores(paper, cands):
        if not _is_score(r, paper):
            continue
        label, dataset = experiment_label(r)
        if BEFORE.search(label):
            before.append(reported(r, paper))
            continue
        recipe = recipe_for(label)
        if REWARD_MODEL.search(f"{label} {r.column}") and recipe not in ("rlhf", "dpo", "sft"):
            recipe = "rlhf"
        # one RLHF run trains the reward model and the policy: their rows are one experiment
        key = "rlhf" if recipe == "rlhf" else re.sub(r"[^a-z0-9]", "", label.lower())
        name = recipe_label("rlhf") if recipe == "rlhf" else label[:60]
        g = groups.setdefault(key, {"name": name, "recipe": recipe, "targets": [], "datasets": [],
                                    "evidence": f"the paper reports results for it ({r.table}, p. {r.page})"})
        if len(g["targets"]) < 6:
            g["targets"].append(reported(r, paper))
        if dataset and dataset not in g["datasets"]:
            g["datasets"].append(dataset)
    own = [grp for grp in groups.values() if not CITED.search(grp["name"])]
    return (own or list(groups.values()))[:MAX_EXPERIMENTS], before  # another paper's number is not an experiment


def _most_mentioned(pattern: re.Pattern, text: str, top: int = 1, skip: frozenset[str] = frozenset()) -> list[str]:
    counts: dict[str, list] = {}
    for m in pattern.finditer(text):
        key = re.sub(r"[^a-z0-9]", "", m.group(1).lower())
        if key in skip:
            continue
        counts.setdefault(key, [0, m.start(), m.group(1)])[0] += 1
    ranked = sorted(counts.values(), key=lambda c: (-c[0], c[1]))
    return [c[2] for c in ranked[:top]]


def guess_model(paper: Paper) -> str | None:
    """The pre-trained model the paper names most (a sized variant, e.g. BERT-base, before bare BERT)."""
    text = paper.text()
    return (_most_mentioned(_MODEL_NAMES, text, skip=frozenset({"bert"})) or _most_mentioned(_MODEL_NAMES, text)
            or [None])[0]


_DECODER = re.compile(r"gpt|llama|mistral|smollm", re.I)


def guess_decoder(paper: Paper) -> str | None:
    """The decoder-only model the paper names most (the policy of an RLHF paper, the model an SFT or
    DPO paper tunes), None when it names none."""
    names = [n for n in _most_mentioned(_MODEL_NAMES, paper.text(), top=6) if _DECODER.search(n)]
    return names[0] if names else None


def guess_dataset(paper: Paper) -> str | None:
    names = _most_mentioned(_DATASET_NAMES, paper.text(), top=3)
    return ", ".join(names) or None


def in_paper(value: str, paper_text_key: str) -> bool:
    key = re.sub(r"[^a-z0-9]", "", (value or "").lower())
    return len(key) >= 2 and key in paper_text_key


def written_as(value: str, text: str) -> str | None:
    """The name the paper writes for a longer form of it: without its trailing version ("SST" for
    "SST-2", "BERT" for "BERT v2") or variant ("BERT-base" for "BERT-base-uncased"), the longest such
    stem the paper writes as a word of its own; None when it writes none."""
    stems, s = [], (value or "").strip()
    while True:
        t = re.sub(r"(?:[-\s_]+[A-Za-z0-9.]+|[-\s]?v?\d+)$", "", s, flags=re.I)
        if t == s or len(t) < 2:
            break
        stems.append(t)
        s = t
    for stem in stems:
        m = re.search(rf"(?<![A-Za-z0-9]){re.escape(stem)}(?![A-Za-z0-9-])", text, flags=re.I)
        if m:
            return m.group(0)
    return None


def stated(paper: Paper, name: str) -> str | None:
    for h in paper.hyperparameters:
        if h.name == name:
            return h.value
    return None


def first_int(value: str | None) -> int | None:
    m = re.search(r"\d+", value or "")
    return int(m.group()) if m else None


def prose(value, paper_text: str, marker: str) -> str:
    """The model's free text if it reads as words: '' for echoes of the prompt's marker or digit
    soup; numbers the paper never prints are masked, so no invented figure reaches the report."""
    if not isinstance(value, str) or "PAPER-" in value or marker in value:
        return ""
    if len(re.findall(r"[A-Za-z]{3,}", value)) < 2 and not re.fullmatch(r"[A-Za-z][\w -]{2,}", value.strip()):
        return ""
    return re.sub(r"\d+(?:\.\d+)?", lambda n: n.group() if n.group() in paper_text else "[?]", value.strip())


def metric_of(targets: list[Reported]) -> str:
    return targets[0].metric if targets else "accuracy"


def recipe_label(recipe: str) -> str:
    from agent.plan import METHOD_LABELS

    return METHOD_LABELS.get(recipe, recipe)


def values_of(text: str) -> list[float]:
    """The numbers a stated value holds: "5E-04" -> [0.0005]; a grid "3 · 10-5, 3 · 10-4" -> both."""
    out = []
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(?:[·x×*]\s*10\s*[-−]\s*(\d+)|[eE]\s*([-+]?\d+))?", str(text)):
        exp = -int(m.group(2)) if m.group(2) else int(m.group(3)) if m.group(3) else 0
        out.append(float(f"{m.group(1)}e{exp}"))  # the decimal as written: 3 · 10-4 is 0.0003, not 0.00030000000000000003
    return out


def same_number(a, b) -> bool:
    """Whether ``a`` is the paper's stated value ``b``, or one of the values of a stated grid
    ("3 · 10-5, 3 · 10-4, 3 · 10-3": the model picking one of them agrees with the paper)."""
    try:
        return math.isclose(float(a), float(str(b).strip()), rel_tol=1e-9)
    except (TypeError, ValueError):
        pass
    return isinstance(a, (int, float)) and any(abs(float(a) - v) <= 1e-12 + 1e-9 * abs(v) for v in values_of(b))
