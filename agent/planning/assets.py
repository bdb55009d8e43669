"""The plan's base model and dataset: the paper's own when the asset broker can have them, else
the closest catalogue entry, with the broker's reason as the deviation's reason."""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.context import Offline
from agent.plan import Deviation
from agent.planning.grounding import key
from sandbox.broker import AssetRefused, catalogue

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")
# well-known benchmarks under the names papers give them -> (Hub id, config)
DATASET_ALIASES = {
    "sst2": ("stanfordnlp/sst2", None), "sst": ("stanfordnlp/sst2", None), "gluesst2": ("nyu-mll/glue", "sst2"),
    "imdb": ("stanfordnlp/imdb", None), "rottentomatoes": ("cornell-movie-review-data/rotten_tomatoes", None),
    "agnews": ("fancyzhx/ag_news", None), "yelppolarity": ("fancyzhx/yelp_polarity", None),
}
# The bundled data is the paper's own only when the paper names that data: Hutto & Gilbert's
# movie-review snippets. Other movie-review sets (IMDb, Pang & Lee's Rotten Tomatoes sentences) are
# other datasets: fetched when possible, else substituted with a deviation.
OWN_DATA = re.compile(r"hutto|movie[- ]?review[- ]?snippets", re.I)


@dataclass
class Chosen:
    name: str
    """What the plan and the scaffolds use: a bundled name (under $REPRO_MODELS / $REPRO_DATA) or a Hub id."""
    config: str | None = None
    own: bool = False
    deviation: Deviation | None = None


def hub_ids(text: str) -> list[str]:
    """Hub ids a paper's name for an asset can be: itself when it reads as one ("bert-base-uncased",
    "org/name"), or its lower-case form ("BERT-base-uncased")."""
    t = text.strip().strip("`'\"")
    out = [x for x in dict.fromkeys([t, re.sub(r"\s+", "-", t.lower())]) if HUB_ID.match(x)]
    return out[:2]


def _substitute(broker, kind: str, paper_name: str, why: str, entry=None) -> Chosen:
    entry = entry or catalogue.closest(kind, paper_name)
    reason = f"{why}: the closest asset available locally is {entry.about}"
    if broker is not None:
        broker.catalogue(entry, by="plan", stands_in_for=paper_name, reason=why)
    return Chosen(name=entry.name, own=False,
                  deviation=Deviation(what="base model" if kind == "model" else "dataset", paper=paper_name,
                                      ours=entry.name if kind == "model" else entry.about, reason=reason))


def encoder_entry():
    """The catalogue's encoder: what stands in for any paper model on an encoder task."""
    return next(e for e in catalogue.ENTRIES if e.kind == "model" and e.role == "encoder")


def is_decoder(paper_model: str) -> bool:
    return catalogue.closest("model", paper_model or "").role == "causal-lm"


def choose_model(broker, paper_model: str, offline: Offline, decoder_task: bool = False) -> Chosen:
    """The plan's (encoder) model. On an encoder task a decoder-only paper model is substituted by
    the encoder, never by a decoder; on a decoder task (causal-LM recipes, or a decoder paper with
    no encoder recipe) the causal model stands in (build_plan's 'base model (causal LM)'
    deviation) and the encoder is only the scaffolds' default, no substitution of its own."""
    entry = catalogue.lookup("model", paper_model) or (
        catalogue.ENTRIES[0] if key(offline.encoder) and (key(paper_model) in key(offline.encoder)
                                                            and len(key(paper_model)) >= 6) else None)
    if entry is not None and entry.role == "encoder":  # the bundled encoder is the paper's own
        if broker is not None:
            broker.catalogue(entry, by="plan")
        return Chosen(name=entry.name, own=True)
    if is_decoder(paper_model):
        if decoder_task:
            return Chosen(name=encoder_entry().name, own=False)
        return _substitute(broker, "model", paper_model, f"{paper_model} is a decoder-only model and the "
                           "classification scaffolds need an encoder", entry=encoder_entry())
    return _fetch(broker, "model", paper_model, hub_ids(paper_model))


def choose_dataset(broker, paper_dataset: str) -> Chosen:
    entry = catalogue.lookup("dataset", paper_dataset) or (
        catalogue.closest("dataset", paper_dataset) if OWN_DATA.search(paper_dataset or "") else None)
    if entry is not None:
        if broker is not None:
            broker.catalogue(entry, by="plan")
        return Chosen(name=entry.name, own=True)
    alias = DATASET_ALIASES.get(key(paper_dataset))
    if alias:
        return _fetch(broker, "dataset", paper_dataset, [alias[0]], alias[1])
    return _fetch(broker, "dataset", paper_dataset, hub_ids(paper_dataset))


def _fetch(broker, kind: str, paper_name: str, ids: list[str], config: str | None = None) -> Chosen:
    if broker is None:
        return _substitute(None, kind, paper_name, "offline machine")
    if not ids:
        return _substitute(broker, kind, paper_name, f"the paper names no Hub id for its {kind} "
                                                     f"({paper_name!r}); the agent may still request one")
    reasons = []
    for rid in ids:
        try:
            if kind == "model":
                broker.request_model(rid, by="plan")
            else:
                broker.request_dataset(rid, config=config, by="plan")
            return Chosen(name=rid, config=config, own=True)
        except AssetRefused as exc:
            reasons.append(exc.reason)
            if exc.code in ("offline", "unreachable", "not_allowed"):
                break  # the next spelling would meet the same answer
    return _substitute(broker, kind, paper_name, reasons[-1])
