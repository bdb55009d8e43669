"""The asset broker: the host fetches what a run asks for — a Hugging Face model or dataset, Python
packages — from allowed sources into a cache shared by runs, which every sandbox of the run sees
read-only. The sandbox itself never gets a network.

    broker = Broker.open(mode="auto", ledger=run_dir / "assets.json", blacklist=...)
    rec = broker.request_model("bert-base-uncased")      # an AssetRecord, or AssetRefused
    broker.mount_source, broker.sandbox_env()            # what sandboxes get

Modes: "online" fetches; "offline" never opens a connection (what is already cached, and the
catalogue of assets shipped as packages, is still served); "auto" is online when the Hub answers.
Every grant, substitution and refusal of a run is written to its ledger (``assets.json``), which
the report shows: source, revision, sha256, licence, size.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Literal

from graders.files import write_json
from sandbox.broker import catalogue, hub, packages
from sandbox.broker.hub import AssetRefused
from sandbox.broker.records import AssetRecord, RecordStore, record_key
from sandbox.broker.rules import AssetRules, hub_endpoint
from sandbox.policy import ASSET_MOUNT_POINT

Mode = Literal["auto", "online", "offline"]
CACHE_ENV = "REPRO_ASSET_CACHE"
SANDBOX_ROOT = ASSET_MOUNT_POINT


def default_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repro" / "broker"


def sandbox_env(base: str = SANDBOX_ROOT, tmp: str = "/tmp") -> dict[str, str]:
    """The environment code in a sandbox gets: the Hub cache read-only and offline, writable
    caches in /tmp, pip on the wheelhouse with no index (installs go to a per-container user site)."""
    return {"HF_HUB_CACHE": f"{base}/hf/hub", "HF_DATASETS_PREPARED": f"{base}/hf/datasets", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_HOME": f"{tmp}/hf", "HF_DATASETS_CACHE": f"{tmp}/hf/datasets",
            "HF_HUB_DISABLE_TELEMETRY": "1", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{base}/wheels",
            "PIP_USER": "1", "PYTHONUSERBASE": f"{tmp}/pydeps", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "REPRO_BROKER": base}


class Broker:
    def __init__(self, root: Path, mode: Literal["online", "offline"], rules: AssetRules | None = None,
                 ledger: Path | None = None, endpoint: str | None = None, mode_reason: str = ""):
        self.root = Path(root)
        self.mode, self.mode_reason = mode, mode_reason
        self.rules = rules or AssetRules()
        self.endpoint = (endpoint or hub_endpoint()).rstrip("/")
        self.ledger = ledger
        self.store = RecordStore(self.root)
        self._lock = threading.Lock()
        for sub in ("hf/hub", "wheels", "records"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        try:
            self.root.chmod(0o755)  # the sandbox user reads it (uid 1000 is not the host's)
        except OSError:
            pass  # a cache someone else owns: they set its mode

    @classmethod
    def open(cls, mode: Mode = "auto", *, root: Path | None = None, ledger: Path | None = None,
             blacklist: tuple[str, ...] = (), endpoint: str | None = None) -> "Broker":
        endpoint = (endpoint or hub_endpoint()).rstrip("/")
        rules = AssetRules(blacklist=blacklist)
        if mode == "auto":
            up = rules.source_refusal(endpoint) is None and hub.answers(endpoint)
            mode_, why = ("online", f"{endpoint} answers") if up else ("offline", f"{endpoint} does not answer")
        else:
            mode_, why = mode, "chosen"
        return cls(root or default_root(), mode_, rules, ledger, endpoint, why)

    # --- requests ------------------------------------------------------------------------------
    def request_model(self, repo_id: str, revision: str | None = None, patterns: list[str] | None = None,
                      *, by: str = "agent") -> AssetRecord:
        return self._hub("model", repo_id, revision, patterns, by)

    def request_dataset(self, repo_id: str, config: str | None = None, revision: str | None = None,
                        *, by: str = "agent") -> AssetRecord:
        return self._hub("dataset", repo_id, revision, None, by, config=config)

    def request_packages(self, requirements: list[str], *, by: str = "agent") -> AssetRecord:
        ident = " ".join(sorted(r.strip() for r in requirements))
        key = record_key("packages", ident, None)
        try:
            packages.check_requirements(requirements, self.rules)
            rec = self.store.get(key)
            if rec is None:
                self._need_online("packages", ident)
                rec = packages.fetch(requirements, root=self.root, rules=self.rules, used_bytes=self.used_bytes(),
                                     source=packages.pip_source())
                self.store.put(key, rec)
        except AssetRefused as exc:
            self._log({"refused": {"kind": "packages", "id": ident, "code": exc.code, "reason": exc.reason, "by": by}})
            raise
        self._log({"granted": rec.summary(), "by": by})
        return rec

    def catalogue(self, entry: catalogue.Entry, *, by: str, stands_in_for: str | None = None,
                  reason: str | None = None) -> AssetRecord:
        rec = catalogue.record(entry, self.root)
        self._log({"granted": rec.summary(), "by": by, "stands_in_for": stands_in_for, "reason": reason})
        return rec

    def _hub(self, kind: str, repo_id: str, revision: str | None, patterns: list[str] | None, by: str,
             config: str | None = None) -> AssetRecord:
        repo_id = repo_id.strip()
        entry = catalogue.lookup(kind, repo_id)
        if entry is not None and revision is None and not patterns:  # shipped offline: no fetch needed
            return self.catalogue(entry, by=by)
        key = record_key(kind, repo_id, revision, "|".join(patterns or []) or config or None)
        try:
            if (why := self.rules.blacklist_refusal(kind, repo_id)) is not None:
                raise AssetRefused("blacklisted", why)  # even when cached: the paper forbids it
            rec = self.store.get(key)
            if rec is None:
                self._need_online(kind, repo_id)
                rec = hub.fetch(kind, repo_id, revision=revision, patterns=patterns, root=self.root, rules=self.rules,
                                used_bytes=self.used_bytes(), endpoint=self.endpoint, token=hub.token_from_env(),
                                config=config)
                self.store.put(key, rec)
        except AssetRefused as exc:
            self._log({"refused": {"kind": kind, "id": repo_id, "code": exc.code, "reason": exc.reason, "by": by}})
            raise
        self._log({"granted": rec.summary(), "by": by})
        return rec

    def _need_online(self, kind: str, ident: str) -> None:
        if self.mode != "online":
            raise AssetRefused("offline", f"offline mode ({self.mode_reason}): {kind} {ident} is not in the cache "
                                          f"and cannot be fetched; use a catalogue asset, or run with --assets online")

    # --- the run's ledger ------------------------------------------------------------------------
    def entries(self) -> list[dict]:
        if self.ledger is None or not self.ledger.is_file():
            return []
        try:
            return json.loads(self.ledger.read_text()).get("entries", [])
        except ValueError:
            return []

    def used_bytes(self) -> int:
        seen = {(e["granted"]["kind"], e["granted"]["id"]): e["granted"]["bytes"]
                for e in self.entries() if "granted" in e and e["granted"]["source"] != "catalogue"}
        return sum(seen.values())

    def _log(self, entry: dict) -> None:
        if self.ledger is None:
            return
        with self._lock:
            entries = self.entries()
            entry = {"at": round(time.time(), 1), **entry}
            if entry not in entries:
                entries.append(entry)
            write_json(self.ledger, {"mode": self.mode, "mode_reason": self.mode_reason, "endpoint": self.endpoint,
                                     "cache": str(self.root), "entries": entries})


def assets_used(ledger: Path) -> dict:
    """The ledger as the report shows it: one row per asset and use (the paper's own, or standing in
    for which of the paper's assets; the latest grant wins), the refusals, and the mode."""
    try:
        data = json.loads(Path(ledger).read_text())
    except (OSError, ValueError):
        return {}
    rows: dict[tuple, dict] = {}
    for e in data.get("entries", []):
        if "granted" in e:
            g = e["granted"]
            rows[(g["kind"], g["id"], g.get("config"), e.get("stands_in_for"))] = {**g, "by": e.get("by"),
                                                           "stands_in_for": e.get("stands_in_for"),
                                                           "reason": e.get("reason")}
    refused = [e["refused"] for e in data.get("entries", []) if "refused" in e]
    return {"mode": data.get("mode"), "mode_reason": data.get("mode_reason"), "endpoint": data.get("endpoint"),
            "assets": list(rows.values()), "refused": refused}


__all__ = ["AssetRecord", "AssetRefused", "AssetRules", "Broker", "assets_used", "default_root", "sandbox_env"]
