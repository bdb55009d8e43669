"""Build the sandbox image without any registry.

Offline build (default): a root filesystem is written as a tar stream and imported with
``docker import`` (through ``sandbox.docker``, the only module that talks to Docker):

* a minimal userland: Debian's ``busybox-static`` (``/usr/bin/busybox`` + applet links) and
  the host's ``bash``, with the shared libraries ``ldd`` finds;
* the host Python interpreter (the venv's ``sys.base_prefix``) at ``/opt/python`` without
  test/, idlelib, tkinter, ...;
* a read-only site-packages = the dependency closure (``requires`` without extras) of
  ``SANDBOX_DISTS`` copied file by file from each distribution's RECORD, plus the ``.so``
  dependencies ``ldd`` finds;
* the MiniLM encoder at ``/opt/repro/models/all-MiniLM-L6-v2`` and the demo data at
  ``/opt/repro/data/movieReviewSnippets_GroundTruth.txt``;
* ``/etc/passwd``/``/etc/group`` with user ``sandbox`` (1000:1000), ``/workspace``, ``/tmp``.

The tag is a content hash of the inputs: ``repro-sandbox:<12 hex>``, also tagged
``repro-sandbox:latest``. ``ensure_image()`` returns at once when the tag exists.

Online build (for engines that can pull): ``Dockerfile.cpu`` / ``Dockerfile.gpu`` next to
this file, with versions pinned to the project venv through build args
(``dockerfile_build_args``) and the assets put into the build context.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sandbox import assets
from sandbox.policy import DEFAULT_IMAGE, IMAGE_REPO

BUILDER_VERSION = "1"
LATEST = DEFAULT_IMAGE
SANDBOX_DISTS: tuple[str, ...] = (
    "torch",
    "transformers",
    "peft",
    "safetensors",
    "numpy",
    "tokenizers",
    "accelerate",
    "pyyaml",
    "gguf",  # transformers' gguf_file= loading (causal-LM / DPO recipes on SmolLM2)
    "datasets",  # load_dataset("org/name") from the asset broker's read-only cache
    "pip",  # installs from the broker's wheelhouse (no index, no network)
    "trl",  # the rlhf recipe: RewardTrainer and GRPOTrainer
)
PY_PREFIX = "/opt/python"
SANDBOX_UID = 1000
SANDBOX_GID = 1000
MULTIARCH_LIB = "usr/lib/x86_64-linux-gnu"

IMAGE_ENV: dict[str, str] = {
    "PATH": f"{PY_PREFIX}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "REPRO_MODELS": assets.IMAGE_MODELS_DIR,
    "REPRO_DATA": assets.IMAGE_DATA_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "MPLCONFIGDIR": "/tmp",
    "TOKENIZERS_PARALLELISM": "false",
}

_STDLIB_SKIP = {
    "site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "unittest/test", "ctypes/test", "distutils/tests", "sqlite3/test", "tkinter/test",
}
_BUSYBOX_CANDIDATES = ("/usr/bin/busybox", "/bin/busybox")
_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(\S+)\s+\(0x[0-9a-f]+\)\s*$")


class ImageBuildError(RuntimeError):
    """The image could not be built (missing host tool, missing package, import failed)."""


# --- dependency closure --------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages_dir() -> Path:
    """The project venv's site-packages (where the sandbox dists are copied from)."""
    return Path(sysconfig.get_paths()["purelib"])


def dist_closure(roots: Iterable[str] = SANDBOX_DISTS, site_dir: Path | None = None) -> list[md.Distribution]:
    """Distributions needed by ``roots`` (transitively, extras skipped, markers evaluated)."""
    from packaging.requirements import Requirement

    site_dir = site_dir or site_packages_dir()
    by_name: dict[str, md.Distribution] = {}
    for d in md.distributions(path=[str(site_dir)]):
        n = d.metadata["Name"]
        if n:
            by_name.setdefault(_norm(n), d)
    out: dict[str, md.Distribution] = {}
    todo = [_norm(r) for r in roots]
    missing = []
    while todo:
        n = todo.pop()
        if n in out:
            continue
        d = by_name.get(n)
        if d is None:
            missing.append(n)
            continue
        out[n] = d
        for req in d.requires or []:
            try:
                r = Requirement(req)
            except Exception:
                continue
            if r.marker is not None:
                try:
                    if not r.marker.evaluate({"extra": ""}):
                        continue
                except Exception:
                    continue
            todo.append(_norm(r.name))
    roots_missing = [m for m in missing if m in {_norm(r) for r in roots}]
    if roots_missing:
        raise ImageBuildError(f"not installed in {site_dir}: {', '.join(roots_missing)}")
    return sorted(out.values(), key=lambda d: _norm(d.metadata["Name"]))


def dist_files(dist: md.Distribution, site_dir: Path) -> list[Path]:
    """Files of a distribution that live under site-packages (scripts in bin/ are skipped)."""
    site_dir = site_dir.resolve()
    files = []
    for f in dist.files or []:
        p = Path(os.path.normpath(site_dir / f))
        try:
            p.relative_to(site_dir)
        except ValueError:
            continue
        if p.is_file() or p.is_symlink():
            files.append(p)
    return files


# --- inputs and tag -------------------------------------------------------------------------
@dataclass
class BuildInputs:
    site_dir: Path
    python_prefix: Path
    python_bin: Path
    dists: list[md.Distribution]
    model_dir: Path
    data_files: list[Path]
    busybox: Path
    bash: Path | None
    gguf_file: Path | None = None
    extra: dict = field(default_factory=dict)

    def manifest(self) -> dict:
        model_files = sorted(
            (str(p.relative_to(self.model_dir)), p.stat().st_size) for p in self.model_dir.rglob("*") if p.is_file()
        )
        return {
            "builder": BUILDER_VERSION,
            "python": sys.version.split()[0],
            "python_prefix": str(self.python_prefix),
            "dists": sorted(f"{d.metadata['Name']}=={d.version}" for d in self.dists),
            "model": model_files,
            "data": [[p.name, p.stat().st_size] for p in self.data_files],
            "gguf": [self.gguf_file.name, self.gguf_file.stat().st_size] if self.gguf_file else None,
            "busybox": self.busybox.stat().st_size,
            "env": IMAGE_ENV,
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.manifest(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.digest()}"


def collect_inputs(roots: Iterable[str] = SANDBOX_DISTS) -> BuildInputs:
    site_dir = site_packages_dir()
    prefix = Path(sys.base_prefix)
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    pybin = prefix / "bin" / f"python{ver}"
    if not pybin.is_file():
        raise ImageBuildError(f"host interpreter not found at {pybin}")
    busybox = next((Path(p) for p in _BUSYBOX_CANDIDATES if Path(p).is_file()), None)
    if busybox is None:
        raise ImageBuildError("busybox not found: install Debian's busybox-static (apt-get install busybox-static)")
    if not _is_static(busybox):
        raise ImageBuildError(f"{busybox} is not statically linked: install busybox-static")
    bash = shutil.which("bash")
    return BuildInputs(
        site_dir=site_dir,
        python_prefix=prefix,
        python_bin=pybin,
        dists=dist_closure(roots, site_dir),
        model_dir=assets.model_source_dir(),
        data_files=[assets.data_source_file(n) for n in assets.DATA_FILES],
        gguf_file=_optional(assets.gguf_source_file),
        busybox=busybox,
        bash=Path(bash) if bash else None,
    )


def _optional(find) -> Path | None:
    try:
        return find()
    except assets.AssetMissing:
        return None


def _is_static(path: Path) -> bool:
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "not a dynamic executable" in (out.stdout + out.stderr) or "statically linked" in (out.stdout + out.stderr)


# --- rootfs tar -----------------------------------------------------------------------------
def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def ldd_deps(paths: Iterable[Path]) -> tuple[set[tuple[str, Path]], list[str]]:
    """(soname, resolved host path) of every shared lib the ELF files need, and "not found"s."""
    deps: set[tuple[str, Path]] = set()
    missing: list[str] = []

    def one(p: Path) -> tuple[list[tuple[str, Path]], list[str]]:
        try:
            r = subprocess.run(["ldd", str(p)], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return [], []
        found, miss = [], []
        for line in r.stdout.splitlines():
            if "not found" in line:
                miss.append(f"{p.name}: {line.strip()}")
                continue
            m = _LDD_LINE.match(line)
            if not m:
                continue
            name, path = m.group(1), m.group(2)
            if not path.startswith("/"):
                continue
            found.append((name or os.path.basename(path), Path(path)))
        return found, miss

    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as ex:
        for found, miss in ex.map(one, list(paths)):
            deps.update(found)
            missing.extend(miss)
    return deps, missing


class _RootfsTar:
    """Writes a rootfs tar with deterministic owners (root, except the sandbox user's dirs)."""

    def __init__(self, fileobj):
        self.tar = tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT)
        self.names: set[str] = set()
        self.bytes = 0

    def _info(self, name: str, kind: bytes, mode: int, mtime: float | None = None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = int(mtime if mtime is not None else time.time())
        return ti

    def mkdir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        name = name.strip("/")
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self.names:
                self.mkdir(parent)
        if name in self.names:
            return
        ti = self._info(name, tarfile.DIRTYPE, mode)
        ti.uid, ti.gid = uid, gid
        self.tar.addfile(ti)
        self.names.add(name)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if name in self.names:
            return
        self.mkdir(os.path.dirname(name)) if "/" in name else None
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)
        self.names.add(name)

    def file(self, name: str, src: Path | None = None, data: bytes | None = None, mode: int | None = None) -> None:
        name = name.strip("/")
        if name in self.names:
            return
        if "/" in name:
            self.mkdir(os.path.dirname(name))
        if src is not None and src.is_symlink() and data is None:
            target = os.readlink(src)
            if not os.path.isabs(target):
                self.symlink(name, target)
                return
            src = src.resolve()
        if data is None:
            st = src.stat()
            ti = self._info(name, tarfile.REGTYPE, mode if mode is not None else (0o755 if st.st_mode & 0o111 else 0o644),
                            st.st_mtime)
            ti.size = st.st_size
            with open(src, "rb") as f:
                self.tar.addfile(ti, f)
            self.bytes += st.st_size
        else:
            ti = self._info(name, tarfile.REGTYPE, mode if mode is not None else 0o644)
            ti.size = len(data)
            self.tar.addfile(ti, io.BytesIO(data))
            self.bytes += len(data)
        self.names.add(name)

    def tree(self, dest: str, src: Path, skip: Callable[[Path], bool] = lambda p: False) -> list[Path]:
        """Copy a host tree; returns the ELF files copied (for ldd)."""
        elves = []
        self.mkdir(dest)
        for root, dirs, files in os.walk(src):
            rp = Path(root)
            dirs[:] = sorted(d for d in dirs if not skip(rp / d))
            rel = rp.relative_to(src)
            for d in dirs:
                if (rp / d).is_symlink():
                    self.symlink(f"{dest}/{rel / d}", os.readlink(rp / d))
                else:
                    self.mkdir(f"{dest}/{rel / d}")
            for fn in sorted(files):
                p = rp / fn
                if skip(p):
                    continue
                self.file(f"{dest}/{rel / fn}", p)
                if (fn.endswith(".so") or ".so." in fn) and _is_elf(p):
                    elves.append(p)
        return elves

    def close(self) -> None:
        self.tar.close()


def write_rootfs(inputs: BuildInputs, fileobj, log: Callable[[str], None] = lambda s: None) -> dict:
    """Write the whole root filesystem as an uncompressed tar to ``fileobj``."""
    t = _RootfsTar(fileobj)
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    # usr-merged layout
    for d in ("usr/bin", "usr/sbin", MULTIARCH_LIB, "usr/lib64", "usr/local/bin", "etc", "opt/repro",
              "proc", "sys", "dev", "dev/shm", "run", "var", "var/tmp", "mnt", "home"):
        t.mkdir(d)
    t.mkdir("root", 0o700)
    t.mkdir("tmp", 0o1777)
    t.mkdir("workspace", 0o755, SANDBOX_UID, SANDBOX_GID)
    t.mkdir("home/sandbox", 0o755, SANDBOX_UID, SANDBOX_GID)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        t.symlink(link, target)

    # userland: host bash first (dynamic; its libs via ldd), then busybox applets
    elves: list[Path] = [inputs.python_bin]
    if inputs.bash:
        t.file("usr/bin/bash", inputs.bash.resolve(), mode=0o755)
        elves.append(inputs.bash.resolve())
    t.file("usr/bin/busybox", inputs.busybox, mode=0o755)
    applets = subprocess.run([str(inputs.busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    for a in sorted(applets.split()):
        a = a.strip("/")
        if a.startswith("bin/") or a.startswith("sbin/"):
            a = "usr/" + a
        base = os.path.basename(a)
        if base in ("busybox", "bash") or not base:
            continue
        t.symlink(a, "/usr/bin/busybox")

    # python: interpreter + stdlib
    stdlib = inputs.python_prefix / "lib" / f"python{ver}"
    t.file(f"{PY_PREFIX[1:]}/bin/python{ver}", inputs.python_bin, mode=0o755)
    t.symlink(f"{PY_PREFIX[1:]}/bin/python3", f"python{ver}")
    t.symlink(f"{PY_PREFIX[1:]}/bin/python", f"python{ver}")
    t.symlink("usr/bin/python3", f"{PY_PREFIX}/bin/python{ver}")
    t.symlink("usr/bin/python", f"{PY_PREFIX}/bin/python{ver}")

    def skip_std(p: Path) -> bool:
        rel = p.relative_to(stdlib).as_posix()
        if rel in _STDLIB_SKIP or rel.startswith("config-"):
            return True
        return p.suffix in (".a", ".exe")

    elves += t.tree(f"{PY_PREFIX[1:]}/lib/python{ver}", stdlib, skip_std)

    # sandbox site-packages: the closure, file by file from RECORD
    sp = f"{PY_PREFIX[1:]}/lib/python{ver}/site-packages"
    t.mkdir(sp)
    n_files = 0
    for d in inputs.dists:
        for p in dist_files(d, inputs.site_dir):
            rel = p.relative_to(inputs.site_dir.resolve()).as_posix() if p.is_absolute() else p.as_posix()
            t.file(f"{sp}/{rel}", p)
            n_files += 1
            if (p.name.endswith(".so") or ".so." in p.name) and _is_elf(p):
                elves.append(p)
    log(f"site-packages: {len(inputs.dists)} distributions, {n_files} files")

    # shared libraries outside the trees we copied
    deps, missing = ldd_deps(elves)
    internal_roots = (str(inputs.site_dir.resolve()), str(stdlib.resolve()))
    n_libs = 0
    for soname, path in sorted(deps):
        real = path.resolve()
        if str(real).startswith(internal_roots) or str(path).startswith(internal_roots):
            continue
        if os.path.basename(str(path)).startswith("ld-linux"):
            t.file(f"usr/lib64/{os.path.basename(str(path))}", real, mode=0o755)
        else:
            t.file(f"{MULTIARCH_LIB}/{os.path.basename(str(path))}", real)
        n_libs += 1
    # libs whose RUNPATH in the venv is $ORIGIN are fine; anything ldd could not find is reported
    important_missing = [m for m in missing if "libcuda" not in m and "libnvidia" not in m]
    log(f"shared libraries: {n_libs} copied; {len(important_missing)} unresolved")

    # assets
    t.tree(f"opt/repro/models/{assets.MODEL_NAME}", inputs.model_dir.resolve())
    for data_file in inputs.data_files:
        t.file(f"opt/repro/data/{data_file.name}", data_file.resolve(), mode=0o644)
    if inputs.gguf_file:
        t.file(f"opt/repro/models/{assets.GGUF_NAME}", inputs.gguf_file.resolve(), mode=0o644)

    # users
    t.file("etc/passwd", data=(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n").encode())
    t.file("etc/group", data=f"root:x:0:\nsandbox:x:{SANDBOX_GID}:\nnogroup:x:65534:\n".encode())
    t.file("etc/nsswitch.conf", data=b"passwd: files\ngroup: files\nhosts: files\n")
    t.file("etc/os-release", data=b'NAME="repro-sandbox"\nID=repro-sandbox\n')
    t.file("etc/repro-image.json", data=json.dumps(inputs.manifest(), indent=1, sort_keys=True).encode())
    t.close()
    return {"bytes": t.bytes, "files": len(t.names), "libs": n_libs, "unresolved": important_missing}


def image_changes(tag_digest: str) -> list[str]:
    ch = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    ch += [
        f"USER {SANDBOX_UID}:{SANDBOX_GID}",
        "WORKDIR /workspace",
        'CMD ["/bin/sh"]',
        f"LABEL repro.kind=sandbox-image repro.inputs={tag_digest} repro.builder={BUILDER_VERSION}",
    ]
    return ch


def build_offline(*, force: bool = False, log: Callable[[str], None] = print, tmp_dir: Path | None = None) -> str:
    """Build (or reuse) the offline image; returns its content-hash tag."""
    from sandbox import docker as dk

    t0 = time.monotonic()
    inputs = collect_inputs()
    tag = inputs.tag
    if not force and dk.image_exists(tag):
        dk.tag_image(tag, LATEST)
        return tag
    log(f"building {tag} (offline, docker import)")
    with tempfile.TemporaryDirectory(prefix="repro-image-", dir=tmp_dir) as td:
        tar_path = Path(td) / "rootfs.tar"
        with open(tar_path, "wb") as f:
            info = write_rootfs(inputs, f, log)
        log(f"rootfs: {info['files']} entries, {info['bytes'] / 2**20:.0f} MiB in {time.monotonic() - t0:.0f}s")
        if info["unresolved"]:
            log("warning: unresolved shared libraries: " + "; ".join(info["unresolved"][:5]))
        dk.import_image_tar(tar_path, tag, image_changes(inputs.digest()))
    dk.tag_image(tag, LATEST)
    log(f"built {tag} in {time.monotonic() - t0:.0f}s")
    return tag


def ensure_image(*, force: bool = False, log: Callable[[str], None] = lambda s: None) -> str:
    """Idempotent: the tag of an image built from the current inputs, building it if needed."""
    return build_offline(force=force, log=log)


# --- Dockerfile (online) build ------------------------------------------------------------
DOCKERFILE_DIR = Path(__file__).parent


def dockerfile_build_args(gpu: bool = False, site_dir: Path | None = None) -> dict[str, str]:
    """Build args pinning the Dockerfile build to the project venv's versions."""
    dists = {_norm(d.metadata["Name"]): d.version for d in dist_closure(SANDBOX_DISTS, site_dir)}
    torch_v = dists["torch"].split("+")[0]
    args = {
        "PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
        "TORCH_VERSION": torch_v,
        "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu124" if gpu else "https://download.pytorch.org/whl/cpu",
        "PIP_REQUIREMENTS": " ".join(
            f"{n}=={dists[_norm(n)]}" for n in SANDBOX_DISTS if n != "torch" and _norm(n) in dists
        ),
        "SANDBOX_UID": str(SANDBOX_UID),
    }
    if gpu:
        args["CUDA_BASE"] = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
    return args


def prepare_dockerfile_context(dest: Path, gpu: bool = False) -> tuple[Path, dict[str, str]]:
    """Lay out a build context: the Dockerfile and the assets (copied, not linked)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = "Dockerfile.gpu" if gpu else "Dockerfile.cpu"
    shutil.copy2(DOCKERFILE_DIR / name, dest / "Dockerfile")
    (dest / "assets" / "models").mkdir(parents=True, exist_ok=True)
    (dest / "assets" / "data").mkdir(parents=True, exist_ok=True)
    shutil.copytree(assets.model_source_dir(), dest / "assets" / "models" / assets.MODEL_NAME, dirs_exist_ok=True)
    for name in assets.DATA_FILES:
        shutil.copy2(assets.data_source_file(name), dest / "assets" / "data" / name)
    return dest / "Dockerfile", dockerfile_build_args(gpu)


def build_dockerfile(gpu: bool = False, *, log: Callable[[str], None] = print) -> str:
    """Online build (needs an engine that can pull the base image and reach PyPI)."""
    from sandbox import docker as dk

    args = dockerfile_build_args(gpu)
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    tag = f"{IMAGE_REPO}:{'gpu' if gpu else 'cpu'}-{digest}"
    with tempfile.TemporaryDirectory(prefix="repro-ctx-") as td:
        _, args = prepare_dockerfile_context(Path(td), gpu)
        dk.build_image_from_dockerfile(Path(td), tag, args, log=log)
    dk.tag_image(tag, LATEST)  # what sandboxes use by default
    return tag
