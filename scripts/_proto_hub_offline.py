"""PROTOTYPE (delete-able): prove the host-download -> read-only offline container recipe for HF assets.

Run:  .venv/bin/python scripts/_proto_hub_offline.py [--keep]      (~30 s on 2 cores; needs root for the
      mount-namespace/uid part, else it falls back to chmod-only as the current user)

What it does
  1. builds tiny assets (tests/fakehub.py: org/tiny-bert, org/tiny-sst2, org/tiny-glue[sst2|sst2_small]),
  2. serves them with tests/fakehub.FakeHub on 127.0.0.1,
  3. HOST side (a subprocess, env = FakeHub.env() + HF_HOME=<cache>): downloads with the real
     huggingface_hub client and pre-builds the datasets' arrow caches,
  4. makes <cache> read-only (chmod -R a-w) and runs several "CONTAINER" variants: a fresh subprocess in a
     private mount namespace where <cache> is a read-only bind mount (EROFS, as `docker -v ...:ro`),
     run as uid/gid 65534 (setpriv; /root is re-exposed 0755 inside the namespace only, because the venv's
     interpreter lives under /root/.pyenv), with env -i: PATH, HOME=/tmp/..., HF_HOME=<cache>,
     HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1 (+ HF_DATASETS_CACHE per variant), no HF_ENDPOINT,
  5. checks `pip download` -> `pip install --no-index --find-links <wheelhouse> --target <dir>`.

FINDINGS (huggingface_hub 2.4.0, transformers 5.24.0, datasets 5.2.0; run on 2025-12-01)

Host side - exact calls (process env: HF_ENDPOINT=<hub>, HF_HOME=<cache>, HF_HUB_DISABLE_TELEMETRY=1,
HF_UPDATE_DOWNLOAD_COUNTS=0; HF_ENDPOINT must be set BEFORE importing huggingface_hub/datasets: both read it
at import time - so run the broker's download step in a subprocess, or pass endpoint= explicitly):
    api = HfApi()
    rev = api.resolve_revision(repo_id, repo_type=rt, revision="main")   # -> ResolvedRevision; writes refs/main
    info = api.repo_info(repo_id, repo_type=rt, revision=rev.resolved, files_metadata=True)
    total = sum(s.size for s in info.siblings)                            # size cap BEFORE downloading
    snapshot_download(repo_id, repo_type=rt, revision=rev)                # -> $HF_HOME/hub/<rt>s--org--name/
    # datasets only, once per config the user may ask for (None = the default/unnamed config):
    datasets.load_dataset(repo_id, config, revision=rev.resolved)         # -> $HF_HOME/datasets/org___name/...
  * revision=<plain sha string> to snapshot_download does NOT write refs/main; offline
    from_pretrained("org/tiny-bert") (revision "main") then fails (variant E). resolve_revision() (or
    revision="main") writes refs/main. Pinning via ResolvedRevision gives both.
  * datasets: revision=<sha> (anything but None/"main") also skips the dataset-viewer lookup
    (http://datasets-server.<HF_ENDPOINT host>/info), which otherwise is attempted (DNS for
    "datasets-server.127.0.0.1"); FakeHub.env() also points all proxies at a dead loopback port with
    NO_PROXY=127.0.0.1 so a stray request fails fast. HF_UPDATE_DOWNLOAD_COUNTS=0 stops the HEAD to
    s3.amazonaws.com that load_dataset otherwise sends.

Offline datasets in 5.x: with HF_DATASETS_OFFLINE=1/HF_HUB_OFFLINE=1, load_dataset("org/x") never looks at
the hub cache's parquet files (it raises OfflineModeIsEnabled before hf_hub_download and falls back to
CachedDatasetModuleFactory): it ONLY loads the prepared arrow cache
$HF_DATASETS_CACHE/org___x/<config>/0.0.0/<commit>/{dataset_info.json,x-train.arrow,...}.
So the broker MUST pre-build it with load_dataset on the host (variant B proves the hub snapshot alone fails).
The dataset's hub snapshot is not needed offline at all (variant F loads with an empty hub cache).

Read-only pitfalls (container):
  * transformers from_pretrained / AutoTokenizer from a read-only $HF_HOME/hub: fine, nothing written.
  * datasets from a read-only $HF_DATASETS_CACHE: FAILS - it takes file locks next to the data
    (<cache>/_<path>.lock, <outdir>_builder.lock) (variant A error below).
  * Fix 1 (variant C, recommended): HF_DATASETS_CACHE=/tmp/<w> with real directories
    org___x/<config>/0.0.0/ and a SYMLINK <commit> -> <ro cache>/datasets/org___x/<config>/0.0.0/<commit>:
    locks land in /tmp, the arrow files are memory-mapped from the read-only mount, no copy.
    ds.map(...) cache files: see the map result per variant below.
  * Fix 2 (variant D): cp -r <ro cache>/datasets /tmp/<w> and HF_DATASETS_CACHE=/tmp/<w> (costs a copy).
  * load_dataset("org/tiny-glue") WITHOUT a config name offline, when the broker prepared >1 config, raises
    "There are multiple 'org/tiny-glue' configurations in the cache: ..." (online it would pick the YAML
    default) - prepare only the configs asked for, or always pass the name.

Interrupted download (fakehub break_file): the cut file leaves no blob and no snapshot symlink (the
client writes blobs/<etag>.<rand>.incomplete and deletes it on error); offline snapshot_download then
raises IncompleteSnapshotError thanks to the cached tree listing (<repo>/trees/<commit>.json), and
from_pretrained fails - nothing looks complete.

pip: `pip download --no-deps -d <wh> six` then `pip install --isolated --no-index --find-links <wh>
--target <dir> six` works; --isolated matters here because this machine's pip config/env
(PIP_FIND_LINKS=/opt/wheels, global find-links/extra-index-url) would otherwise add other sources.

(The per-variant results printed by the last run are in RESULTS below the code when --record is given.)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fakehub import FakeHub, build_tiny_repos  # noqa: E402

PY = sys.executable
NOBODY = 65534

HOST_CODE = r'''
import json, os, sys, time
spec = json.loads(sys.argv[1])
from huggingface_hub import HfApi, snapshot_download
import datasets
api = HfApi()
out = []
for item in spec["repos"]:
    rt, rid = item["type"], item["id"]
    t0 = time.time()
    rev = api.resolve_revision(rid, repo_type=rt, revision="main")
    info = api.repo_info(rid, repo_type=rt, revision=rev.resolved, files_metadata=True)
    total = sum(s.size or 0 for s in info.siblings)
    if total > spec["max_bytes"]:
        raise SystemExit(f"{rid}: {total} bytes > cap")
    path = snapshot_download(rid, repo_type=rt, revision=rev)
    rec = {"id": rid, "type": rt, "sha": rev.resolved, "bytes": total, "snapshot": path}
    if rt == "dataset":
        rec["configs"] = {}
        for cfg in item.get("configs") or [None]:
            ds = datasets.load_dataset(rid, cfg, revision=rev.resolved)
            rec["configs"][str(cfg)] = {k: v.num_rows for k, v in ds.items()}
    rec["secs"] = round(time.time() - t0, 2)
    out.append(rec)
print("HOSTRESULT " + json.dumps(out))
'''

CONTAINER_CODE = r'''
import json, os, sys, time, traceback
res = {"uid": os.getuid(), "env": {k: v for k, v in os.environ.items() if k.startswith("HF_")}}
def step(name, fn):
    t0 = time.time()
    try:
        res[name] = {"ok": True, "value": fn(), "secs": round(time.time() - t0, 2)}
    except BaseException as e:  # noqa
        res[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:600],
                     "where": traceback.format_exc().strip().splitlines()[-3][:200]}
t0 = time.time()
import torch, datasets
from transformers import AutoModelForSequenceClassification, AutoTokenizer
res["import_secs"] = round(time.time() - t0, 2)
S = {}
step("tokenizer", lambda: type(S.setdefault("tok", AutoTokenizer.from_pretrained("org/tiny-bert"))).__name__)
step("model", lambda: type(S.setdefault("model", AutoModelForSequenceClassification.from_pretrained("org/tiny-bert"))).__name__)
step("load_dataset(org/tiny-sst2)", lambda: {k: v.num_rows for k, v in S.setdefault("ds", datasets.load_dataset("org/tiny-sst2")).items()})
step("load_dataset(org/tiny-glue, sst2)", lambda: {k: v.num_rows for k, v in datasets.load_dataset("org/tiny-glue", "sst2").items()})
step("load_dataset(org/tiny-glue) no name", lambda: {k: v.num_rows for k, v in datasets.load_dataset("org/tiny-glue").items()})
def fwd():
    tok, model, ds = S["tok"], S["model"], S["ds"]
    batch = tok(ds["test"]["sentence"][:8], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    return list(logits.shape)
step("forward", fwd)
def mapped():
    tok, ds = S["tok"], S["ds"]
    m = ds["train"].map(lambda b: tok(b["sentence"], truncation=True), batched=True)
    return {"rows": m.num_rows, "cache_files": [c["filename"] for c in m.cache_files]}
step("ds.map(tokenize)", mapped)
print("CONTAINERRESULT " + json.dumps(res))
'''


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def tree_state(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, mode, size) of everything under root - to prove the container wrote nothing."""
    out = []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out.append((str(p.relative_to(root)), st.st_mode, st.st_size))
    return out


def can_isolate() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    return sh(["unshare", "-m", "--propagation", "private", "true"]).returncode == 0


def mountpoint(work: Path, src: Path) -> Path:
    """Where the container sees the cache: work/opt/repro/hf (another path than the host's, like /opt/repro/hf),
    or the cache itself where no mount namespace can be had."""
    return work / "opt" / "repro" / "hf" if can_isolate() else src


def run_container(work: Path, env: dict[str, str], src: Path, pre: str = "") -> dict:
    """Run CONTAINER_CODE as 'the container': `src` bind-mounted read-only at mountpoint(), uid 65534, env -i `env`.

    `pre`: shell run first as the container user (e.g. the symlink/copy step of an entrypoint).
    """
    ro = mountpoint(work, src)
    envargs = [f"{k}={v}" for k, v in env.items()]
    user_cmd = " ".join(["env", "-i", *map(shquote, envargs), shquote(PY), "-c", shquote(CONTAINER_CODE)])
    if pre:
        user_cmd = f"{pre} && exec {user_cmd}"
    if can_isolate():
        rootview = work / "rootview"
        (rootview / ".pyenv").mkdir(parents=True, exist_ok=True)
        rootview.chmod(0o755)
        script = " && ".join([
            f"mount --bind {shquote(str(src))} {shquote(str(ro))}",
            f"mount -o remount,bind,ro {shquote(str(ro))}",
            # the venv's interpreter is under /root (0700): show a 0755 /root holding only .pyenv, here only
            f"mount --bind /root/.pyenv {shquote(str(rootview / '.pyenv'))}",
            f"mount --rbind {shquote(str(rootview))} /root",
            f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups sh -c {shquote(user_cmd)}",
        ])
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        how = f"mount-ns, ro bind mount, uid {NOBODY}"
    else:
        cmd = ["sh", "-c", user_cmd]
        how = f"chmod a-w only, uid {os.geteuid()}"
    t0 = time.time()
    p = sh(cmd, cwd="/tmp", timeout=300)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("CONTAINERRESULT ")), None)
    if line is None:
        return {"how": how, "crashed": True, "rc": p.returncode, "stderr": p.stderr[-3000:], "stdout": p.stdout[-2000:]}
    res = json.loads(line[len("CONTAINERRESULT "):])
    res["how"], res["wall_secs"] = how, round(time.time() - t0, 2)
    return res


def shquote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def symlink_farm_cmd(ro_datasets: Path, dest: Path, per_file: bool = True) -> str:
    """Entrypoint snippet (runs as the container user): a writable HF_DATASETS_CACHE `dest` mirroring `ro_datasets`.

    Real directories down to org___x/<config>/<version>/<commit>/ and, per_file=True, one symlink per file
    (dataset_info.json, *.arrow) into the read-only mount. per_file=False symlinks the <commit> directory
    itself - loads fine, but ds.map() then writes its cache file into the read-only directory (EROFS).
    """
    src, dst = shquote(str(ro_datasets)), shquote(str(dest))
    if per_file:
        body = (f'mkdir -p {dst}/"$d" && for f in "$d"/*; do [ -f "$f" ] && ln -s {src}/"$f" {dst}/"$f"; done')
    else:
        body = f'mkdir -p {dst}/"$(dirname "$d")" && ln -s {src}/"$d" {dst}/"$d"'
    return f'cd {src} && for d in */*/*/*; do [ -d "$d" ] || continue; {body}; done; cd /tmp'


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    t_start = time.time()
    work = Path(tempfile.mkdtemp(prefix="proto-hub-"))
    work.chmod(0o755)  # uid 65534 must traverse it
    report: dict = {"work": str(work)}
    try:
        # 1. assets + 2. hub
        t0 = time.time()
        repos = build_tiny_repos(work / "repos")
        report["build_secs"] = round(time.time() - t0, 2)
        cache = work / "cache"  # what the broker fills and the container mounts at /opt/repro/hf
        with FakeHub(repos=repos) as hub:
            # 3. host side
            spec = {"max_bytes": 50_000_000, "repos": [
                {"type": "model", "id": "org/tiny-bert"},
                {"type": "dataset", "id": "org/tiny-sst2"},
                {"type": "dataset", "id": "org/tiny-glue", "configs": ["sst2", "sst2_small"]},
            ]}
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work / "hosthome"),
                   **hub.env(), "HF_HOME": str(cache)}
            t0 = time.time()
            p = sh([PY, "-c", HOST_CODE, json.dumps(spec)], env=env, timeout=300)
            report["host_secs"] = round(time.time() - t0, 2)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("HOSTRESULT ")), None)
            if p.returncode or line is None:
                print(p.stdout[-3000:], p.stderr[-5000:])
                return 1
            report["host"] = json.loads(line[len("HOSTRESULT "):])
            report["host_requests"] = {"total": hub.count(), "GET resolve": hub.count("GET", "/resolve/"),
                                       "HEAD": hub.count("HEAD"), "api": hub.count(path_contains="/api/")}
            report["host_stderr_tail"] = [ln for ln in p.stderr.splitlines() if "Warning" in ln or "rror" in ln][-5:]

            # G (host part): an interrupted download - model.safetensors cut after 40 kB, its retry refused (500)
            hub.break_file("model.safetensors", after_bytes=40_000, then_status=500)
            cache_g = work / "cache_interrupted"
            t0 = time.time()
            pg = sh([PY, "-c", HOST_CODE, json.dumps({**spec, "repos": spec["repos"][:1]})],
                    env={**env, "HF_HOME": str(cache_g)}, timeout=300)
            hub.clear_faults()
            report["G_interrupted_host"] = {
                "rc": pg.returncode, "secs": round(time.time() - t0, 2),
                "error": [ln for ln in pg.stderr.splitlines() if "Error" in ln][-1:],
                "files": sorted(str(x.relative_to(cache_g)) for x in cache_g.rglob("*")
                                if x.is_file() or x.is_symlink()),
            }
        report["cache_layout"] = sorted(
            str(Path(d).relative_to(cache)) for d in (cache.glob("*/*"))
        )

        # 4. read-only + container variants
        sh(["chmod", "-R", "a-w", str(cache)])
        before = tree_state(cache)
        mnt = mountpoint(work, cache)
        if mnt != cache:
            mnt.mkdir(parents=True)
            for d in (work / "opt", work / "opt" / "repro", mnt):
                d.chmod(0o755)
        base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HF_HOME": str(mnt),
                "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        tmp = work / "ctmp"  # stands for the container's /tmp
        tmp.mkdir()
        tmp.chmod(0o1777)
        variants: dict[str, tuple[dict, str]] = {
            "A_naive(HF_HOME ro only)": ({**base, "HOME": f"{tmp}/hA"}, ""),
            "B_empty_writable_datasets_cache": ({**base, "HOME": f"{tmp}/hB", "HF_DATASETS_CACHE": f"{tmp}/dsB"}, ""),
            "C0_symlink_commit_dir": ({**base, "HOME": f"{tmp}/hC0", "HF_DATASETS_CACHE": f"{tmp}/dsC0"},
                                      symlink_farm_cmd(mnt / "datasets", tmp / "dsC0", per_file=False)),
            "C_symlink_files": ({**base, "HOME": f"{tmp}/hC", "HF_DATASETS_CACHE": f"{tmp}/dsC"},
                                symlink_farm_cmd(mnt / "datasets", tmp / "dsC")),
            "D_copy": ({**base, "HOME": f"{tmp}/hD", "HF_DATASETS_CACHE": f"{tmp}/dsD"},
                       f"cp -r {shquote(str(mnt / 'datasets'))} {shquote(str(tmp / 'dsD'))} && chmod -R u+w {shquote(str(tmp / 'dsD'))}"),
        }
        report["container"] = {}
        for name, (venv, pre) in variants.items():
            report["container"][name] = run_container(work, venv, cache, pre)
        report["ro_cache_unchanged"] = tree_state(cache) == before

        # E: pinned download without refs/main (revision=<sha string>): copy of the cache without refs/ dirs
        cache_e = work / "cache_no_refs"
        shutil.copytree(cache, cache_e, symlinks=True)
        sh(["chmod", "-R", "u+w", str(cache_e)])
        for refs in cache_e.glob("hub/*/refs"):
            shutil.rmtree(refs)
        sh(["chmod", "-R", "a-w", str(cache_e)])
        report["container"]["E_no_refs_main"] = run_container(
            work, {**base, "HOME": f"{tmp}/hE", "HF_DATASETS_CACHE": f"{tmp}/dsE"},
            cache_e, symlink_farm_cmd(mountpoint(work, cache_e) / "datasets", tmp / "dsE"))
        # F: dataset arrow cache only - the datasets' hub snapshots removed, and only glue's sst2 prepared
        cache_f = work / "cache_no_ds_hub"
        shutil.copytree(cache, cache_f, symlinks=True)
        sh(["chmod", "-R", "u+w", str(cache_f)])
        for d in cache_f.glob("hub/datasets--*"):
            shutil.rmtree(d)
        shutil.rmtree(cache_f / "datasets" / "org___tiny-glue" / "sst2_small")  # one prepared config only
        sh(["chmod", "-R", "a-w", str(cache_f)])
        report["container"]["F_no_dataset_hub_snapshot+one_glue_config"] = run_container(
            work, {**base, "HOME": f"{tmp}/hF", "HF_DATASETS_CACHE": f"{tmp}/dsF"},
            cache_f, symlink_farm_cmd(mountpoint(work, cache_f) / "datasets", tmp / "dsF"))

        # G (container part): the interrupted cache must not load
        sh(["chmod", "-R", "a-w", str(cache_g)])
        report["container"]["G_interrupted_download"] = run_container(
            work, {**base, "HOME": f"{tmp}/hG", "HF_DATASETS_CACHE": f"{tmp}/dsG"}, cache_g)

        # 5. wheelhouse
        wh, target = work / "wheelhouse", work / "target"
        t0 = time.time()
        p1 = sh([PY, "-m", "pip", "download", "--no-deps", "-d", str(wh), "six"], timeout=300)
        penv = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        p2 = sh([PY, "-m", "pip", "install", "--isolated", "--no-index", "--find-links", str(wh),
                 "--target", str(target), "six"], env=penv, timeout=300)
        p3 = sh([PY, "-c", "import six, sys; print(six.__version__, six.__file__)"],
                env={**penv, "PYTHONPATH": str(target)})
        report["pip"] = {"download_rc": p1.returncode, "wheels": sorted(x.name for x in wh.glob("*")),
                         "install_rc": p2.returncode, "install_tail": p2.stdout.strip().splitlines()[-1:] + p2.stderr.strip().splitlines()[-2:],
                         "import": p3.stdout.strip() or p3.stderr.strip()[-300:], "secs": round(time.time() - t0, 2)}
    finally:
        report["total_secs"] = round(time.time() - t_start, 2)
        print(json.dumps(report, indent=1, default=str))
        if not args.keep:
            sh(["chmod", "-R", "u+w", str(work)])
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
