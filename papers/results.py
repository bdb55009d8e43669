"""Reported results (numbers in result tables) and hyper-parameters (text and tables)."""

from __future__ import annotations

import re

from .paper import Hyperparameter, ReportedResult, Section, Table
from .tables import PLACEHOLDER_RE, first_number, is_numeric

METRICS = [
    ("accuracy", r"\bacc(uracy)?\b"), ("F1", r"\bf1\b|f-score|f-measure"), ("BLEU", r"\bbleu\b"),
    ("ROUGE", r"\brouge"), ("perplexity", r"\bppl\b|perplexity"), ("error", r"\berr(or)?s?\b"),
    ("EM", r"\bem\b|exact match"), ("precision", r"\bprecision\b|^p$"), ("recall", r"\brecall\b|^r$"),
    ("METEOR", r"\bmet(eor)?\b"), ("NIST", r"\bnist\b"), ("CIDEr", r"\bcider\b"), ("TER", r"\bter\b"),
    ("MCC", r"\bmcc\b|matthews"), ("Pearson", r"pearson"), ("Spearman", r"spearman"),
    ("loss", r"\bloss\b"), ("win rate", r"win ?rate"), ("FLOPs", r"flops"), ("parameters", r"param"),
    ("seconds", r"\bseconds?\b|\btime\b|latency|\bms\b"),
]

HP_TABLE_ROWS = {
    "learning_rate": r"^(learning rate|lr)\b(?!\s*(schedule|scheduler|decay))", "batch_size": r"batch size", "epochs": r"^#?\s*epochs?\b|num(ber of)? epochs",
    "warmup": r"warm-?up", "dropout": r"dropout", "max_seq_length": r"max(imum)?\.? seq(uence)?\.?( len(gth)?\.?)?|max(imum)? length",
    "optimizer": r"^optimi[sz]er", "weight_decay": r"weight decay", "lora_rank": r"lora (config|rank)|^rank\b|^r$",
    "lora_alpha": r"lora\s*(α|alpha)", "lr_schedule": r"(lr|learning rate) schedule", "label_smoothing": r"label smooth",
    "training_steps": r"training steps|train steps|max steps", "beam_size": r"beam size",
}
# settings whose value is a number: a table cell without a digit ("Linear", "-") is not their value
NUMERIC_HP = set(HP_TABLE_ROWS) - {"optimizer", "lr_schedule"}


def _unit(col: str, caption: str | None, cell: str) -> str | None:
    if cell.strip().endswith("%"):
        return "%"
    for label, pat in METRICS:
        if re.search(pat, col, re.I):
            return label
    for label, pat in METRICS[:12]:
        if caption and re.search(pat, caption, re.I):
            return label
    return None


def _is_hp_table(t: Table) -> bool:
    return bool(t.caption and re.search(r"hyper-?parameter", t.caption, re.I)) and not re.search(
        r"analysis|accuracy|validation|results", t.caption or "", re.I)


def results_from_tables(tables: list[Table]) -> list[ReportedResult]:
    out: list[ReportedResult] = []
    for t in tables:
        if not t.rows or _is_hp_table(t):
            continue
        labels = t.column_labels()
        ncols = len(t.rows[0])
        body = t.rows[t.header_rows:]
        # label columns: mostly non-numeric in the body
        def txt(cell: str) -> bool:
            return bool(cell) and not is_numeric(cell) and not PLACEHOLDER_RE.match(cell.strip())

        label_cols = [
            c for c in range(ncols)
            if sum(1 for r in body if txt(r[c])) > sum(1 for r in body if r[c] and is_numeric(r[c]))
        ]
        if 0 not in label_cols:
            label_cols = [0] + label_cols
        last_label: dict[int, str] = {}
        for r in body:
            for c in label_cols:
                if r[c]:
                    last_label[c] = r[c]
            for c in range(ncols):
                if c in label_cols or not is_numeric(r[c]):
                    continue
                # the label block immediately left of this value (side-by-side sub-tables)
                lc = [x for x in label_cols if x < c]
                block: list[int] = []
                for x in reversed(lc):
                    if block and any(y not in label_cols for y in range(x + 1, block[-1])):
                        break
                    block.append(x)
                block.reverse()
                block = block or label_cols[:1]
                parts = [r[x] for x in block if r[x]]
                if not parts:
                    # group rows (e.g. ablation variants) inherit the nearest label above
                    parts = [last_label[x] for x in block if x in last_label]
                row_label = " / ".join(dict.fromkeys(parts))
                if any(re.search(p, row_label, re.I) for p in HP_TABLE_ROWS.values()) and len(row_label) < 30:
                    continue
                v = first_number(r[c])
                if v is None:
                    continue
                col = labels[c] if c < len(labels) else str(c)
                out.append(ReportedResult(
                    table=t.id, row=row_label, column=col, value=v, text=r[c],
                    unit_or_metric=_unit(col, t.caption, r[c]), page=t.page,
                ))
    return out


_V = r"(\d+(?:\.\d+)?(?:\s*[×x\*·]\s*10\s*[\^]?\s*[-−–]?\s*\d+|\s*[eE]\s*[-−–+]?\s*\d+)?)"
# A list of values ("2e-5, 3e-5 and 5e-5"), but not the next setting's number ("batch size 32, 1 epoch").
_NOT_UNIT = r"(?!\s*(?:epochs?|steps?|layers?|tokens?|hours?|GPUs?|iterations?|updates?|runs?|seeds?|heads?|warm-?up)\b)"
_VL = _V + r"(?:\s*(?:,|and|or|to)\s*" + _V + _NOT_UNIT + r")*"
HP_TEXT = [
    ("learning_rate", re.compile(r"learning[- ]rates?\s*(?:\(lr\)\s*)?(?:of|=|:|is|was|were|to|set to|in|from|among|\s|\{|\[|\(|η)*\s*" + _VL, re.I)),
    ("learning_rate", re.compile(r"\blr\s*(?:=|:|of)\s*" + _VL, re.I)),
    ("batch_size", re.compile(r"(?:mini-?)?batch(?:es)?\s*sizes?\s*(?:of|=|:|is|was|were|to|set to|in|\s|\{|\[)*\s*" + _VL, re.I)),
    ("batch_size", re.compile(r"batch(?:es)? of\s*(\d[\d,]*)", re.I)),
    ("epochs", re.compile(r"(\d+)\s*(?:training\s*)?epochs?\b", re.I)),
    ("epochs", re.compile(r"epochs?\s*(?:of|=|:|to|is|was)\s*(\d+)", re.I)),
    ("warmup", re.compile(r"warm-?up\s*(?:steps|ratio|proportion|period|of|for|over|the learning rate over the first)?\s*(?:of|=|:|is|was|over|for|to)?\s*(\d[\d,.]*\s*(?:%|steps|k|K)?)", re.I)),
    ("warmup", re.compile(r"(\d[\d,.]*\s*%?)\s*(?:of\s*)?(?:the\s*)?(?:training\s*)?(?:steps\s*)?(?:for\s*)?(?:linear\s*)?warm-?up", re.I)),
    ("dropout", re.compile(r"dropout\s*(?:rate|probability|prob\.?|ratio)?\s*(?:of|=|:|is|was|to)?\s*(?:P_?drop\s*=\s*)?(0?\.\d+|0|1)", re.I)),
    ("dropout", re.compile(r"P\s*drop\s*=\s*(0?\.\d+)", re.I)),
    ("lora_rank", re.compile(r"(?:LoRA\s*)?rank\s*(?:r\s*)?(?:of|=|:)\s*(\d+)", re.I)),
    ("lora_rank", re.compile(r"\br\s*=\s*(\d+)\b")),
    ("lora_alpha", re.compile(r"(?:lora[_ ]?)?(?:α|alpha)\s*(?:=|of|:)\s*(\d+)", re.I)),
    ("max_seq_length", re.compile(r"(?:max(?:imum)?\.?\s*)?(?:input\s*)?(?:sequence|seq\.?)\s*length\s*(?:of|=|:|to|is|was)?\s*(\d+)", re.I)),
    ("max_seq_length", re.compile(r"sequences? of (?:up to |at most )?(\d+) tokens", re.I)),
    ("weight_decay", re.compile(r"weight decay\s*(?:of|=|:|is|was|to)?\s*" + _V, re.I)),
    ("optimizer", re.compile(r"\b(AdamW|Adam|Adafactor|SGD|RMSProp|LAMB|Adagrad)\b(?:\s*(?:optimi[sz]er|with))?")),
    ("training_steps", re.compile(r"(\d[\d,.]*\s*[kKM]?)\s*(?:training\s*)?(?:steps|updates|iterations)\b", re.I)),
    ("label_smoothing", re.compile(r"label smoothing\s*(?:of|=|:|value of)?\s*(?:ϵ\s*ls\s*=\s*)?(0?\.\d+)", re.I)),
]


def _sentences(text: str):
    for para in text.split("\n"):
        yield from re.split(r"(?<=[.;])\s+(?=[A-Z])", para)


def find_hyperparameters(sections: list[Section], tables: list[Table], abstract: str = "") -> list[Hyperparameter]:
    out: list[Hyperparameter] = []
    seen: set[tuple[str, str, int]] = set()

    def add(name: str, value: str, page: int, context: str, where: str = "") -> None:
        value = re.sub(r"\s+", " ", value).strip(" ,.;")
        if not value:
            return
        key = (name, value.lower(), page, where)  # a table's cells apart: one value per column
        if key in seen:
            return
        seen.add(key)
        out.append(Hyperparameter(name=name, value=value, page=page, context=context.strip()[:300]))

    for s in sections:
        if re.match(r"^(references|bibliography)", s.title, re.I):
            continue
        for sent in _sentences(s.text):
            if len(sent) > 1200:
                sent = sent[:1200]
            for name, rx in HP_TEXT:
                for m in rx.finditer(sent):
                    val = m.group(0)[m.start(1) - m.start(0):] if m.lastindex else m.group(0)
                    if name == "optimizer":
                        val = m.group(1)
                    elif m.lastindex:
                        val = sent[m.start(1):m.end(m.lastindex)]
                    if name == "lora_rank" and not re.search(r"lora|rank|low-rank|adapt", sent, re.I):
                        continue
                    if name == "training_steps" and not re.search(r"train|fine-tun|pre-train", sent, re.I):
                        continue
                    # "inference time ... on CPU with a batch size of 1" times the model, it does not train it
                    if name == "batch_size" and re.search(r"inferen|latency|throughput", sent, re.I) \
                            and not re.search(r"\btrain|fine-?tun", sent, re.I):
                        continue
                    # a long sentence: the part around the value (what it is the value of precedes it)
                    near = sent if len(sent) <= 300 else sent[max(0, m.start() - 220):m.end() + 80]
                    add(name, val, s.page, near)
    for t in tables:
        labels = t.column_labels()
        group = ""  # a row that only labels the rows under it ("RoBERTa base"): whose settings they are
        for r in t.rows[t.header_rows:]:
            if r and r[0] and not any(r[1:]):
                group = r[0]
            for c, cell in enumerate(r[:2]):
                for name, pat in HP_TABLE_ROWS.items():
                    if cell and len(cell) < 40 and re.search(pat, cell, re.I):
                        for j in range(c + 1, len(r)):
                            if r[j] and r[j] != cell and (name not in NUMERIC_HP or re.search(r"\d", r[j])):
                                col = labels[j] if j < len(labels) else ""
                                label = " / ".join(x for x in r[:c + 1] if x)
                                if group and not r[0]:
                                    label = f"{group} / {label}"
                                ctx = f"{t.id}: {label} | {col}".strip()
                                add(name, r[j], t.page, ctx + f" = {r[j]}", where=f"{t.id}|{col}")
                        break
    return out
