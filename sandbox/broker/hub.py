"""Models and datasets from a Hugging Face Hub (or a mirror at HF_ENDPOINT), with the real client.

The host downloads into ``<root>/hf/hub`` — huggingface_hub's own cache layout, content-addressed
blobs plus per-commit snapshots — which every sandbox of a run sees read-only with
``HF_HUB_OFFLINE=1``: code loads ``from_pretrained("org/name")`` exactly as a user writes it.
The token (``HF_TOKEN``) is used here, on the host, and goes nowhere else.
"""
from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

from sandbox.broker.records import AssetRecord, FileEntry, sha256_file
from sandbox.broker.rules import AssetRules
from sandbox.policy import ASSET_MOUNT_POINT

# weights for other frameworks: a PyTorch sandbox never loads them, and they double the size
MODEL_SKIP = ("*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*", "*.onnx", "*.tflite",
              "onnx/*", "openvino/*", "coreml/*", "*.mlmodel", "*.gguf")
SANDBOX_HUB = f"{ASSET_MOUNT_POINT}/hf/hub"


class AssetRefused(Exception):
    """A request the broker will not (or cannot) serve; ``code`` says which rule."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _api(endpoint: str, token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token or False)


def _select(siblings: list, patterns: list[str] | None, kind: str) -> list:
    names = [s.rfilename for s in siblings]
    if patterns:
        chosen = [s for s in siblings if any(fnmatch.fnmatch(s.rfilename, p) for p in patterns)]
    else:
        chosen = [s for s in siblings if not any(fnmatch.fnmatch(s.rfilename, p) for p in MODEL_SKIP)] \
            if kind == "model" else list(siblings)
        if kind == "model" and any(n.endswith(".safetensors") for n in names):
            chosen = [s for s in chosen if not s.rfilename.endswith(".bin")]  # the same weights twice
    return chosen


def _licence(info) -> str | None:
    card = getattr(info, "card_data", None) or {}
    lic = card.get("license") if hasattr(card, "get") else None
    if not lic:
        lic = next((t.split(":", 1)[1] for t in (info.tags or []) if t.startswith("license:")), None)
    return ", ".join(lic) if isinstance(lic, list) else lic


def _translate(exc: Exception, kind: str, repo_id: str, endpoint: str) -> AssetRefused:
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return AssetRefused("gated", f"{kind} {repo_id} is gated on {endpoint}: accept its terms there and set "
                                     f"HF_TOKEN on the host")
    if isinstance(exc, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError)):
        return AssetRefused("not_found", f"{kind} {repo_id} was not found on {endpoint} ({type(exc).__name__}): "
                                         f"check the id and revision")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return AssetRefused("offline", f"the host is in offline mode (HF_HUB_OFFLINE): {kind} {repo_id} cannot be fetched")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return AssetRefused("denied", f"{endpoint} refused {kind} {repo_id} (HTTP {status}): set HF_TOKEN on the "
                                      f"host if it needs one")
    return AssetRefused("unreachable", f"{endpoint} did not answer for {kind} {repo_id} "
                                       f"({type(exc).__name__}: {str(exc)[:160]})")


# Run on the host, in a child process: `datasets` reads HF_ENDPOINT when it is imported. Offline,
# datasets (5.x) loads only its own prepared arrow cache, never a Hub snapshot's parquet files,
# so the broker prepares exactly the configuration asked for (two prepared configurations make a
# config-less load ambiguous). revision=<commit> and no download counts: no side requests.
_PREPARE = """
import sys, datasets
repo, config, sha, cache = sys.argv[1:5]
ds = datasets.load_dataset(repo, config or None, revision=sha, cache_dir=cache)
print({k: len(v) for k, v in ds.items()})
"""
# Sandbox side: datasets takes lock files beside its cache and writes map() caches into it, so the
# read-only prepared cache is mirrored, one symlink per file, into a writable one in /tmp.
DATASETS_LINK = ('[ -d "$HF_DATASETS_PREPARED" ] && cd "$HF_DATASETS_PREPARED" && for d in */*/*/*; do '
                 '[ -d "$d" ] || continue; mkdir -p "$HF_DATASETS_CACHE/$d" && for f in "$d"/*; do [ -f "$f" ] && '
                 'ln -sfn "$HF_DATASETS_PREPARED/$f" "$HF_DATASETS_CACHE/$f"; done; done; true')


def prepare_dataset(repo_id: str, config: str | None, sha: str, root: Path, endpoint: str,
                    token: str | None) -> str:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(root / "hf"), "HF_HUB_CACHE": str(root / "hf" / "hub"),
           "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HF_DATASETS_OFFLINE": "0", "HF_HUB_OFFLINE": "0"}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token  # this host process only
    proc = subprocess.run([sys.executable, "-c", _PREPARE, repo_id, config or "", sha, str(root / "hf" / "datasets")],
                          env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise AssetRefused("unusable", f"dataset {repo_id}{' (' + config + ')' if config else ''} was downloaded but "
                                       f"`datasets` cannot load it: {last}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def fetch(kind: str, repo_id: str, *, revision: str | None, patterns: list[str] | None, root: Path,
          rules: AssetRules, used_bytes: int, endpoint: str, token: str | None,
          config: str | None = None) -> AssetRecord:
    """Fetch one model or dataset repo into the shared cache and verify it; raise AssetRefused."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    if (why := rules.source_refusal(endpoint)) is not None:
        raise AssetRefused("not_allowed", why)
    if (why := rules.blacklist_refusal(kind, repo_id)) is not None:
        raise AssetRefused("blacklisted", why)
    api = _api(endpoint, token)
    try:
        info = (api.model_info if kind == "model" else api.dataset_info)(
            repo_id, revision=revision, files_metadata=True, timeout=30)
    except Exception as exc:  # noqa: BLE001 — every client failure becomes a refusal the agent reads
        raise _translate(exc, kind, repo_id, endpoint) from exc
    chosen = _select(info.siblings or [], patterns, kind)
    if not chosen:
        raise AssetRefused("not_found", f"{kind} {repo_id} has no file matching {patterns or 'the defaults'}; "
                                        f"its files: {[s.rfilename for s in (info.siblings or [])][:20]}")
    size = sum((s.size or 0) for s in chosen)
    if (why := rules.size_refusal(kind, repo_id, size, used_bytes)) is not None:
        raise AssetRefused("too_large", why)
    cache = root / "hf" / "hub"
    try:
        folder = Path(snapshot_download(repo_id, repo_type=kind, revision=revision, cache_dir=cache,
                                        allow_patterns=[s.rfilename for s in chosen], endpoint=endpoint,
                                        token=token or False, max_workers=4))
    except Exception as exc:  # noqa: BLE001 — an interrupted download: no record is written
        raise _translate(exc, kind, repo_id, endpoint) from exc
    if folder.name != info.sha:
        raise AssetRefused("changed", f"{kind} {repo_id} changed on {endpoint} while it was fetched "
                                      f"({info.sha} → {folder.name}): ask again")
    files: dict[str, FileEntry] = {}
    for s in chosen:
        path = folder / s.rfilename
        if not path.is_file():
            raise AssetRefused("incomplete", f"{kind} {repo_id}: {s.rfilename} is missing after the download")
        digest = sha256_file(path)
        want = getattr(getattr(s, "lfs", None), "sha256", None)
        if want and want != digest:
            raise AssetRefused("corrupt", f"{kind} {repo_id}: {s.rfilename} has sha256 {digest[:12]}…, the Hub "
                                          f"says {want[:12]}…; fetch refused")
        files[s.rfilename] = FileEntry(size=path.stat().st_size, sha256=digest)
    if kind == "model":
        load = f'AutoModel.from_pretrained("{repo_id}"' + (f', revision="{revision}"' if revision else "") + ")"
        where = f"{SANDBOX_HUB}/models--{repo_id.replace('/', '--')}/snapshots/{info.sha}"
    else:
        splits = prepare_dataset(repo_id, config, info.sha, root, endpoint, token)
        load = f'datasets.load_dataset("{repo_id}"' + (f', "{config}"' if config else "") + ")" + \
            (f"  # splits {splits}" if splits else "")
        where = f"{ASSET_MOUNT_POINT}/hf/datasets (prepared; mirrored into $HF_DATASETS_CACHE)"
    return AssetRecord(kind=kind, id=repo_id, source=endpoint, revision=info.sha, requested=revision,
                       config=config, licence=_licence(info), files=files, how=load, sandbox_path=where)


def answers(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether the Hub answers at all (for --assets auto): one small request, short timeout."""
    import httpx

    try:
        r = httpx.get(f"{endpoint.rstrip('/')}/api/models", params={"limit": 1}, timeout=timeout)
        return r.status_code < 500
    except (httpx.HTTPError, OSError):
        return False


def token_from_env() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
