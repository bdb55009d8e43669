"""Grounding: what the structured paper itself says, so a weak model's answer can be checked.

Experiments come from the paper's result rows (every method or configuration it reports numbers
for); target numbers are always rows of ``paper.results`` with table/row/column/page provenance;
names of models and datasets must occur in the paper's text.
"""
from __future__ import annotations

import re

from agent.plan import Reported
from papers.paper import Paper

MAX_CANDIDATES = 12
MAX_EXPERIMENTS = 8

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
                       r"frozen (encoder|backbone)|feature[- ]extract|head[- ]only|transfer learning", re.I),
}
# The same recipes named in a results row (short labels: "LoRA (r = 8)", "FT", "head only").
ROW_PATTERNS = {
    "rlhf": re.compile(r"\bRLHF\b|\bGRPO\b|\bPPO\b|after RL\b", re.I),
    "qlora": re.compile(r"qlora", re.I),
    "sft": re.compile(r"\bSFT\b|causal|language model", re.I),
    "dpo": re.compile(r"\bDPO\b|preference", re.I),
    "lora": re.compile(r"(?<!q)lora", re.I),
    "full": re.compile(r"\bfull|\bFT\b|fine-?tun\w* all", re.I),
    "head": re.compile(r"head|last layer|linear|frozen|classifier", re.I),
}
# a reward model's own number (its pairwise accuracy): a stage of the RLHF recipe, whatever the row calls
# the model ("MiniLM-L6, scalar head" is not the classifier-head recipe)
REWARD_MODEL = re.compile(r"reward[- ]model|pairwise acc", re.I)
BEFORE = re.compile(r"before|no fine-?tun|zero-?shot|untuned|random|pre-?trained only", re.I)
SCORE = re.compile(r"acc|error|\bf1\b|score|perplex|win rate|reward|bleu|rouge|\bem\b|matthews|corr|mnli|sst|"
                   r"glue|squad|qnli|qqp|rte|mrpc|cola|sts", re.I)
METRIC_WORDS = [("mean reward", re.compile(r"mean reward|\breward\b(?! acc)", re.I)),
                ("error", re.compile(r"error", re.I)), ("f1", re.compile(r"\bf1\b", re.I)),
                ("perplexity", re.compile(r"perplex", re.I)), ("accuracy", re.compile(r"acc", re.I))]
# a column that names a method rather than a measurement (tables with datasets as rows)
METHODISH = re.compile(r"adapter|fine-?tun|\bFT\b|lora|baseline|head|prob|frozen|prompt|prefix|bitfit|distil|"
                       r"bert|gpt|roberta|\bt5\b|lstm|transformer|\bours\b|model", re.I)
_MODEL_NAMES = re.compile(
    r"\b(BERT[- ]?(?:base|large)|RoBERTa(?:[- ](?:base|large))?|DistilBERT|ALBERT|XLNet|ELECTRA|"
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


def metric_name(column: str, unit: str | None) -> str:
    where = f"{column} {unit or ''}"
    return next((name for name, pat in METRIC_WORDS if pat.search(where)), "accuracy")


def reported(r) -> Reported:
    return Reported(value=r.value, text=r.text, table=r.table, row=r.row, column=r.column, page=r.page,
                    metric=metric_name(r.column, r.unit_or_metric))


def find_reported(paper: Paper, key: str) -> Reported | None:
    """The paper's accuracy for a recipe's method (or 'before'), from its tables, with provenance."""
    pattern = BEFORE if key == "before" else ROW_PATTERNS[key]
    candidates = [r for r in paper.results if pattern.search(r.row) and _is_score(r)]  # not a parameter count
    if key != "before":  # a 'before' row mentions 'fine-tuning' too; keep method rows clean
        candidates = [r for r in candidates if not BEFORE.search(r.row)]
    if key not in ("before", "rlhf"):  # a reward model's number is the RLHF run's, whatever its row says
        candidates = [r for r in candidates if not REWARD_MODEL.search(f"{r.row} {r.column}")]
    accurate = [r for r in candidates if re.search(r"acc", f"{r.column} {r.unit_or_metric or ''}", re.I)]
    pick = (accurate or candidates or [None])[0]
    return reported(pick) if pick is not None else None


def _is_score(r) -> bool:
    return bool(SCORE.search(f"{r.column} {r.unit_or_metric or ''}")) and (r.unit_or_metric or "") != "parameters"


def candidate_results(paper: Paper, limit: int = MAX_CANDIDATES) -> list:
    """The paper's results worth showing the model, one per (table, row), as ids R1..Rn.

    Rows named like a method, or like the paper's model, and columns that hold a score rank
    first; dataset-statistics tables last. The ids are all the model may answer with: a target
    number can only ever be one of these rows."""
    title_words = {w.lower() for w in re.findall(r"[A-Za-z][\w-]{2,}", paper.title) if w[0].isupper()}
    captions = {t.id: (t.caption or "") for t in paper.tables}
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for i, r in enumerate(paper.results):
        score = 2 * _is_score(r)
        score += bool(SCORE.search(captions.get(r.table, "")))
        score += bool(any(p.search(r.row) for p in ROW_PATTERNS.values()) or BEFORE.search(r.row))
        score += bool(any(w in r.row.lower() for w in title_words))
        score -= 3 * bool(re.search(r"statistic|hyper-?param", captions.get(r.table, ""), re.I))
        key = (r.table, r.row)
        if key not in best or score > best[key][0]:
            best[key] = (score, i)
    per_table: dict[str, int] = {}
    chosen = []
    for score, i in sorted(best.values(), key=lambda v: (-v[0], v[1])):
        table = paper.results[i].table
        if per_table.get(table, 0) >= 4:
            continue
        per_table[table] = per_table.get(table, 0) + 1
        chosen.append(i)
        if len(chosen) >= limit:
            break
    return [paper.results[i] for i in sorted(chosen)]


def experiment_label(r) -> tuple[str, str | None]:
    """(what the result measures a method by, the dataset when the row names one instead):
    rows are usually methods; in tables with datasets as rows, the method is the column."""
    if METHODISH.search(r.column) and not METHODISH.search(r.row) and not BEFORE.search(r.row) \
            and not any(p.search(r.row) for p in ROW_PATTERNS.values()):
        return r.column.strip(), r.row.strip()
    return r.row.strip(), None


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
        if not _is_score(r):
            continue
        label, dataset = experiment_label(r)
        if BEFORE.search(label):
            before.append(reported(r))
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
            g["targets"].append(reported(r))
        if dataset and dataset not in g["datasets"]:
            g["datasets"].append(dataset)
    return list(groups.values())[:MAX_EXPERIMENTS], before


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
