"""A loopback fake of the Hugging Face Hub for tests, plus builders of tiny HF-format assets.

`FakeHub` serves model and dataset repos from local directories over HTTP on 127.0.0.1 (a free
port), in a thread, with just the routes the real `huggingface_hub` client (2.x) uses for
`snapshot_download`, `hf_hub_download`, `HfApi().model_info/dataset_info(files_metadata=True)`,
`HfApi().list_repo_files/list_repo_tree/get_paths_info`, `HfFileSystem` and online
`datasets.load_dataset("org/name")`:

    GET  /api/{models|datasets|spaces}/{repo}[/revision/{rev}]      repo info (siblings; sizes with ?blobs=true)
    GET  /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=  tree listing
    POST /api/{type}s/{repo}/paths-info/{rev}                        paths info (form: paths=..., expand=...)
    HEAD/GET /{repo}/resolve/{rev}/{file}                           model files
    HEAD/GET /{datasets|spaces}/{repo}/resolve/{rev}/{file}         dataset / space files

Resolve answers carry X-Repo-Commit, ETag (git blob sha1, or the sha256 for LFS-like files, which also
get X-Linked-Etag / X-Linked-Size), Content-Length and Accept-Ranges; `Range: bytes=N-[M]` gets a 206.
No X-Xet-* header and no `Link: ...xet-auth` header is ever sent, so the client never takes its xet path.
Errors carry the `X-Error-Code` the client maps to exceptions: RepoNotFound -> RepositoryNotFoundError,
RevisionNotFound -> RevisionNotFoundError, EntryNotFound -> (Remote)EntryNotFoundError (with X-Repo-Commit,
so the client caches the miss under `.no_exist/`). Every request is recorded (`hub.requests`, `hub.count`).

Each repo has one revision: `main`, which resolves to a deterministic 40-hex commit computed from the files
(`hub.commit(repo_type, repo_id)`); the commit sha itself is also accepted as a revision. Files are read
when the hub starts (`hub.refresh()` re-reads them).

Usage in a test. huggingface_hub and datasets read HF_ENDPOINT at import time, so either pass
`endpoint=hub.url` (HfApi, HfFileSystem, hf_hub_download, snapshot_download; token=False keeps a
machine's saved token out), or - what transformers/datasets need, and closest to production - run the
downloading code in a subprocess with `env={**os.environ, **hub.env(), "HF_HOME": str(tmp_path)}`.
pytest runs with --import-mode=importlib and tests/ is no package, so load this file by path, as
tests/conftest.py does for fixtures/graders/doubles.py (no sys.modules entry needed):

    spec = importlib.util.spec_from_file_location("fakehub", Path(__file__).parent / "fakehub.py")
    fakehub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakehub)
    FakeHub, build_tiny_repos = fakehub.FakeHub, fakehub.build_tiny_repos

    @pytest.fixture(scope="session")
    def tiny_repos(tmp_path_factory):
        return build_tiny_repos(tmp_path_factory.mktemp("hub-repos"))   # {("model","org/tiny-bert"): Path, ...}

    @pytest.fixture
    def fake_hub(tiny_repos):
        with FakeHub(repos=tiny_repos) as hub:
            yield hub

    def test_download(fake_hub, tmp_path):
        from huggingface_hub import snapshot_download
        p = snapshot_download("org/tiny-bert", cache_dir=tmp_path, endpoint=fake_hub.url, token=False)
        assert fake_hub.count("GET", "/resolve/") >= 1

Failure injection:
    FakeHub(repos, token_required="s3cret")  # 401 unless `Authorization: Bearer s3cret`: no header ->
                                              # RepositoryNotFoundError; a wrong token -> HfHubHTTPError(401)
    hub.break_file("model.safetensors", after_bytes=100)           # the next GET of it sends 100 bytes of body
                                              # and closes the connection; the client's retry (a fresh GET: httpx
                                              # does not hand over a partial chunk, so there is no Range resume)
                                              # then succeeds.
    hub.break_file("model.safetensors", 100, then_status=500)      # ...and every later GET answers 500: the
                                              # download fails for good within ~1 s (HfHubHTTPError).
    hub.break_file("model.safetensors", 100, times=None)           # every GET is cut: the client retries 5x,
                                              # 1 s apart, then raises httpx2.RemoteProtocolError (~5 s).
    hub.fail_status("config.json", 403, times=1)                    # answer a status instead (HEAD and GET).
                                              # hf_hub_download reports a failed HEAD as LocalEntryNotFoundError;
                                              # on a 5xx (and 429/timeouts) it first retries the HEAD with backoff:
                                              # 7 HEADs over ~23 s when it keeps failing - keep `times` small.

The builders (`build_tiny_bert`, `build_sentiment_dataset`, `build_tiny_repos`) write deterministic tiny
assets in the layouts the Hub holds them in (save_pretrained output; parquet under data/ with a README whose
YAML declares `configs:` and `dataset_info.features`). They need torch + transformers (model) and pyarrow
(dataset); both are imported lazily.
"""

import dataclasses
import hashlib
import json
import random
import re
import socket
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "LABEL_NAMES",
    "FakeHub",
    "RequestRecord",
    "build_sentiment_dataset",
    "build_tiny_bert",
    "build_tiny_repos",
    "sentiment_rows",
    "sentiment_vocab",
]

REPO_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}
# Files the real Hub stores with git-LFS (decided here by suffix, not by .gitattributes).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".gguf", ".parquet", ".arrow", ".ckpt")
_LAST_MODIFIED = "2024-01-01T00:00:00.000Z"


# ----------------------------------------------------------------------------------------------- repo model
def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclasses.dataclass(frozen=True)
class _File:
    path: str
    source: Path
    size: int
    oid: str  # git blob oid (of the LFS pointer for LFS files)
    sha256: str | None  # set for LFS files

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.sha256:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": _pointer_size(self.sha256, self.size)}
        return entry

    def sibling(self, blobs: bool) -> dict:
        entry: dict = {"rfilename": self.path}
        if blobs:
            entry.update(size=self.size, blobId=self.oid)
            if self.sha256:
                entry["lfs"] = {"size": self.size, "sha256": self.sha256, "pointerSize": _pointer_size(self.sha256, self.size)}
        return entry


def _pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _pointer_size(sha256: str, size: int) -> int:
    return len(_pointer(sha256, size))


@dataclasses.dataclass
class _Repo:
    repo_type: str
    repo_id: str
    root: Path
    files: dict[str, _File]
    sha: str

    @classmethod
    def load(cls, repo_type: str, repo_id: str, root: Path) -> Self:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"repo dir for {repo_type}:{repo_id} not found: {root}")
        files: dict[str, _File] = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if not p.is_file() or rel.split("/")[0] in (".git", ".cache"):
                continue
            data = p.read_bytes()
            if p.suffix in LFS_SUFFIXES:
                sha = hashlib.sha256(data).hexdigest()
                files[rel] = _File(rel, p, len(data), _git_oid(_pointer(sha, len(data))), sha)
            else:
                files[rel] = _File(rel, p, len(data), _git_oid(data), None)
        h = hashlib.sha1(f"{repo_type}\0{repo_id}\0".encode())
        for f in files.values():
            h.update(f"{f.path}\0{f.oid}\0".encode())
        return cls(repo_type, repo_id, root, files, h.hexdigest())

    def folders(self) -> set[str]:
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out

    def folder_entry(self, path: str) -> dict:
        oid = hashlib.sha1(("tree\0" + path + "\0" + "".join(f.oid for p, f in self.files.items() if p.startswith(path + "/"))).encode())
        return {"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": path}

    def entry(self, path: str) -> dict | None:
        if path in self.files:
            return self.files[path].tree_entry()
        if path in self.folders():
            return self.folder_entry(path)
        return None

    def listing(self, path: str, recursive: bool) -> list[dict] | None:
        path = path.strip("/")
        if path and path not in self.folders():
            return None
        prefix = path + "/" if path else ""
        out = []
        for folder in sorted(self.folders()):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                out.append(self.folder_entry(folder))
        for fpath, f in self.files.items():
            if fpath.startswith(prefix) and (recursive or "/" not in fpath[len(prefix):]):
                out.append(f.tree_entry())
        return out


@dataclasses.dataclass
class RequestRecord:
    """One request, logged when it arrives (so it is counted before the client can see any answer)."""
    method: str
    path: str  # URL path, unquoted
    query: str
    authorization: str | None
    status: int = 0  # set when the status line is sent
    body_bytes: int = 0  # body bytes sent (counted just before each write)


@dataclasses.dataclass
class _Fault:
    repo: tuple[str, str] | None
    path: str
    after_bytes: int | None  # break mode
    status: int | None  # status mode
    times: int | None  # None = forever
    get_only: bool = False  # status faults: leave HEAD alone

    def matches(self, repo: _Repo, path: str, method: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.get_only and method != "GET":
            return False
        return path == self.path and (self.repo is None or self.repo == (repo.repo_type, repo.repo_id))


class _DropConnection(Exception):
    pass


# ----------------------------------------------------------------------------------------------- server
class FakeHub:
    """Fake Hugging Face Hub on http://127.0.0.1:<free port>; a context manager (start/stop also work)."""

    def __init__(
        self,
        repos: Mapping[tuple[str, str], Path | str],
        *,
        token_required: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        for repo_type, _ in repos:
            if repo_type not in REPO_TYPES:
                raise ValueError(f"unknown repo type {repo_type!r} (one of {sorted(REPO_TYPES)})")
        self._repo_dirs = {(t, i): Path(p) for (t, i), p in repos.items()}
        self.token_required = token_required
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- lifecycle
    def refresh(self) -> None:
        """(Re)read every repo directory (sizes, hashes, commit)."""
        repos = {key: _Repo.load(key[0], key[1], root) for key, root in self._repo_dirs.items()}
        with self._lock:
            self._repos = repos

    def add_repo(self, repo_type: str, repo_id: str, root: Path | str) -> None:
        self._repo_dirs[(repo_type, repo_id)] = Path(root)
        self.refresh()

    def start(self) -> Self:
        if self._server is not None:
            return self
        hub = self

        class Handler(_Handler):
            fake_hub = hub

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The endpoint, e.g. http://127.0.0.1:40123 (what HF_ENDPOINT / endpoint= take)."""
        return f"http://{self._host}:{self.port}"

    endpoint = url

    def env(self) -> dict[str, str]:
        """Environment for a process that downloads from this hub (HF_ENDPOINT etc.).

        Besides HF_ENDPOINT it turns off the two side requests `datasets`/`huggingface_hub` make to real
        hosts (download counts to S3, telemetry), and points every proxy variable at a dead loopback port
        with NO_PROXY covering only this hub, so a stray request to any other host fails fast instead of
        leaving the machine (e.g. datasets' `http://datasets-server.127.0.0.1:PORT/info` lookup).
        """
        dead = "http://127.0.0.1:9"
        return {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead,
            "http_proxy": dead, "https_proxy": dead, "all_proxy": dead,
            "NO_PROXY": f"{self._host}", "no_proxy": f"{self._host}",
        }

    # -- repos
    def commit(self, repo_type: str, repo_id: str) -> str:
        return self._repos[(repo_type, repo_id)].sha

    def files(self, repo_type: str, repo_id: str) -> dict[str, int]:
        """{path: size} of a repo as served."""
        return {p: f.size for p, f in self._repos[(repo_type, repo_id)].files.items()}

    # -- request log
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1 for r in self.requests
            if (method is None or r.method == method) and (path_contains is None or path_contains in r.path)
        )

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._requests.append(rec)

    # -- faults
    def break_file(self, path: str, after_bytes: int, *, times: int | None = 1, then_status: int | None = None,
                   repo: tuple[str, str] | None = None) -> None:
        """Cut GETs of `path` at absolute byte offset `after_bytes`: the body stops there and the connection closes.

        `times`: how many GETs to cut (None: all). After those, GETs of `path` are served normally, or answered
        with `then_status` (e.g. 500) if given. `repo`: (repo_type, repo_id), or None for any repo.
        """
        with self._lock:
            self._faults.append(_Fault(repo, path, after_bytes, None, times))
            if then_status is not None:
                self._faults.append(_Fault(repo, path, None, then_status, None, get_only=True))

    def fail_status(self, path: str, status: int, *, repo: tuple[str, str] | None = None,
                    times: int | None = None) -> None:
        """Answer `status` to HEAD/GET of `path` (`times` times, None: always). A lasting 5xx on HEAD costs
        ~23 s of client backoff (7 HEADs) before hf_hub_download gives up with LocalEntryNotFoundError."""
        with self._lock:
            self._faults.append(_Fault(repo, path, None, status, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, repo: _Repo, path: str, *, kind: str, method: str) -> _Fault | None:
        """First live fault of `kind` for `path`; 'status' faults only count once no 'break' fault is live."""
        with self._lock:
            if kind == "status" and any(f.status is None and f.matches(repo, path, method) for f in self._faults):
                return None
            for fault in self._faults:
                if (fault.status is not None) == (kind == "status") and fault.matches(repo, path, method):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None


_API_RE = re.compile(r"^/api/(models|datasets|spaces)/(.+)$")
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    fake_hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    timeout = 10  # idle keep-alive connections end after this

    def log_message(self, format, *args):
        pass

    # -- plumbing
    def _setup_request(self) -> None:
        split = urlsplit(self.path)
        self._raw_path = split.path
        self._upath = unquote(split.path)
        self._query = split.query
        self._params = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self._rec = RequestRecord(self.command, self._upath, self._query, self.headers.get("Authorization"))
        self.fake_hub._record(self._rec)

    def send_response(self, code, message=None):
        rec = getattr(self, "_rec", None)
        if rec is not None:
            rec.status = code
        super().send_response(code, message)

    def _write(self, data: bytes) -> None:
        self._rec.body_bytes += len(data)
        try:
            self.wfile.write(data)
        except OSError:
            self._rec.body_bytes -= len(data)
            raise

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self._write(body)

    def _json(self, obj, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> None:
        h = {"X-Error-Message": message}
        if code:
            h["X-Error-Code"] = code
        h.update(headers or {})
        self._json({"error": message}, status, h)

    def _authorized(self) -> bool:
        token = self.fake_hub.token_required
        if token is None:
            return True
        auth = self.headers.get("Authorization")
        if auth == f"Bearer {token}":
            return True
        if auth:
            # What the real Hub says for a bad token: a plain 401 (-> HfHubHTTPError, not RepositoryNotFound).
            self._error(401, None, "Invalid credentials in Authorization header")
        else:
            # Private repo, no token: the real Hub hides the repo (-> RepositoryNotFoundError).
            self._error(401, "RepoNotFound", "Invalid username or password.")
        return False

    def _dispatch(self) -> None:
        self._setup_request()
        try:
            if not self._authorized():
                return
            if self._upath.startswith("/api/"):
                self._api()
            else:
                self._resolve()
        except _DropConnection:
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._post_body = self.rfile.read(length) if length else b""
        self._dispatch()

    # -- lookup helpers
    def _split_repo(self, repo_type: str, rest: str) -> tuple[_Repo | None, str]:
        """Longest known repo id that prefixes `rest` ('org/name/...'): (repo, remainder)."""
        repos = self.fake_hub._repos
        best: tuple[_Repo | None, str] = (None, rest)
        for (t, rid), repo in repos.items():
            longer = best[0] is None or len(rid) > len(best[0].repo_id)
            if t == repo_type and (rest == rid or rest.startswith(rid + "/")) and longer:
                best = (repo, rest[len(rid):].lstrip("/"))
        return best

    def _check_revision(self, repo: _Repo, revision: str) -> bool:
        if revision in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    # -- /api/...
    def _api(self) -> None:
        m = _API_RE.match(self._upath)
        if not m:
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
            return
        plural, rest = m.groups()
        repo_type = {v: k for k, v in REPO_TYPES.items()}[plural]
        repo, remainder = self._split_repo(repo_type, rest)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        verb, _, arg = remainder.partition("/")
        if verb == "" and self.command in ("GET", "HEAD"):
            self._repo_info(repo, "main")
        elif verb == "revision" and self.command in ("GET", "HEAD"):
            self._repo_info(repo, arg)
        elif verb == "tree" and self.command in ("GET", "HEAD"):
            revision, _, path = arg.partition("/")
            self._tree(repo, revision, path)
        elif verb == "paths-info" and self.command == "POST":
            self._paths_info(repo, arg)
        else:
            self._error(404, None, f"fakehub: unsupported route {self.command} {self._upath}")

    def _repo_info(self, repo: _Repo, revision: str) -> None:
        if not self._check_revision(repo, revision):
            return
        blobs = self._params.get("blobs", "").lower() == "true"
        info = {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": repo.sha,
            "lastModified": _LAST_MODIFIED,
            "createdAt": _LAST_MODIFIED,
            "private": self.fake_hub.token_required is not None,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [f.sibling(blobs) for f in repo.files.values()],
        }
        if blobs:
            info["usedStorage"] = sum(f.size for f in repo.files.values())
        self._json(info)

    def _tree(self, repo: _Repo, revision: str, path: str) -> None:
        if not self._check_revision(repo, revision):
            return
        recursive = self._params.get("recursive", "false").lower() in ("true", "1")
        listing = repo.listing(path, recursive)
        if listing is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on \"{revision}\"",
                        {"X-Repo-Commit": repo.sha})
            return
        self._json(listing)

    def _paths_info(self, repo: _Repo, revision: str) -> None:
        if not self._check_revision(repo, revision):
            return
        body = getattr(self, "_post_body", b"")
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = [e for e in (repo.entry(p.strip("/")) for p in paths) if e is not None]
        self._json(out)

    # -- /[datasets/|spaces/]{repo}/resolve/{rev}/{file}
    def _resolve(self) -> None:
        raw = self._raw_path.lstrip("/")
        repo_type = "model"
        for t, plural in (("dataset", "datasets"), ("space", "spaces")):
            if raw.startswith(plural + "/"):
                repo_type, raw = t, raw[len(plural) + 1:]
                break
        # Split on the *raw* path: the revision is percent-encoded by the client (refs%2Fpr%2F1).
        m = re.match(r"^(.+?)/resolve/([^/]+)/(.+)$", raw)
        if not m or self.command not in ("GET", "HEAD"):
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
            return
        repo_id, revision, filename = unquote(m.group(1)), unquote(m.group(2)), unquote(m.group(3))
        repo = self.fake_hub._repos.get((repo_type, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        if not self._check_revision(repo, revision):
            return
        f = repo.files.get(filename)
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.sha})
            return
        fault = self.fake_hub._take_fault(repo, filename, kind="status", method=self.command)
        if fault is not None:
            self._error(fault.status, None, "fakehub: injected failure", {"X-Repo-Commit": repo.sha})
            return
        self._serve_file(repo, f)

    def _serve_file(self, repo: _Repo, f: _File) -> None:
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{f.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{Path(f.path).name}"',
        }
        if f.sha256:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and self.command == "GET":
            m = _RANGE_RE.match(rng.strip())
            if not m or (f.size > 0 and int(m.group(1)) >= f.size):
                self._error(416, None, "Requested Range Not Satisfiable",
                            {"Content-Range": f"bytes */{f.size}", "X-Repo-Commit": repo.sha})
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), f.size - 1) if m.group(2) else f.size - 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = max(end - start + 1, 0)
        ctype = "application/octet-stream" if f.sha256 else "text/plain; charset=utf-8"

        if self.command == "HEAD":
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(f.size))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            return

        cut = None
        fault = self.fake_hub._take_fault(repo, f.path, kind="break", method="GET")
        if fault is not None:
            assert fault.after_bytes is not None
            if fault.after_bytes <= end:
                cut = max(fault.after_bytes - start, 0)  # bytes of this response body to send before dropping

        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        with open(f.source, "rb") as fh:
            fh.seek(start)
            remaining = length if cut is None else cut
            while remaining > 0:
                chunk = fh.read(min(65536, remaining))
                if not chunk:
                    break
                self._write(chunk)
                remaining -= len(chunk)
        if cut is not None:
            raise _DropConnection()


# ----------------------------------------------------------------------------------------------- builders
_POS = ["good", "great", "wonderful", "delightful", "charming", "moving", "brilliant", "funny", "warm", "clever"]
_NEG = ["bad", "dull", "boring", "awful", "tedious", "clumsy", "weak", "bland", "messy", "flat"]
_NOUNS = ["film", "movie", "story", "plot", "cast", "script", "ending", "score", "director", "picture"]
_TEMPLATES = [
    "the {n} is {a}",
    "a {a} {n}",
    "what a {a} {n}",
    "this {n} was really {a}",
    "the {n} felt {a} and {a2}",
    "an utterly {a} {n}",
]
_EXTRA_WORDS = ["the", "is", "a", "what", "this", "was", "really", "felt", "and", "an", "utterly", "not", "very", "!", ".", ","]
LABEL_NAMES = ["negative", "positive"]


def sentiment_rows(n: int, seed: int) -> list[dict]:
    """`n` deterministic rows {'sentence': str, 'label': 0|1}, balanced labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = _POS if label else _NEG
        a, a2 = rng.sample(words, 2)
        sentence = rng.choice(_TEMPLATES).format(n=rng.choice(_NOUNS), a=a, a2=a2)
        rows.append({"sentence": sentence, "label": label})
    return rows


def sentiment_vocab() -> list[str]:
    """Every word the sentiment rows can contain (sorted, lower case)."""
    return sorted(set(_POS + _NEG + _NOUNS + _EXTRA_WORDS))


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"sentence": pa.array([r["sentence"] for r in rows], pa.string()),
                      "label": pa.array([r["label"] for r in rows], pa.int64())})
    pq.write_table(table, path, compression="snappy")


def build_sentiment_dataset(
    dest: Path | str,
    *,
    n_train: int = 64,
    n_test: int = 32,
    seed: int = 0,
    config_names: Sequence[str] | None = None,
    pretty_name: str = "tiny sentiment",
) -> Path:
    """Write a tiny labelled sentiment dataset repo (columns sentence:string, label:ClassLabel) into `dest`.

    config_names=None: one unnamed config ('default'), files `data/{split}-00000-of-00001.parquet`.
    config_names=("sst2", ...): one folder per config, `{name}/{split}-00000-of-00001.parquet`, and
    `load_dataset(repo, "sst2")` selects it (the first is `default: true`). Config k uses seed+k.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    named = list(config_names or [])
    configs = named or ["default"]
    card_configs, infos = [], []
    for k, name in enumerate(configs):
        folder = name if named else "data"
        shrink = 2 if k else 1  # later configs are half as big, so configs are told apart by their sizes
        splits = {"train": sentiment_rows(n_train // shrink, seed + 1000 * k),
                  "test": sentiment_rows(n_test // shrink, seed + 1000 * k + 1)}
        for split, rows in splits.items():
            _write_parquet(rows, dest / folder / f"{split}-00000-of-00001.parquet")
        cfg = {"config_name": name,
               "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in splits]}
        if named and k == 0:
            cfg["default"] = True
        card_configs.append(cfg)
        infos.append({
            "config_name": name,
            "features": [
                {"name": "sentence", "dtype": "string"},
                {"name": "label", "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(LABEL_NAMES)}}}},
            ],
            # no "splits": datasets wants num_bytes there too (else it warns and ignores them)
        })
    import yaml

    meta = {"pretty_name": pretty_name, "language": ["en"], "license": "cc0-1.0", "task_categories": ["text-classification"],
            "configs": card_configs,
            "dataset_info": infos if named else infos[0]}
    if not named:
        del meta["dataset_info"]["config_name"]
    card = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n# " + pretty_name + "\n\nSynthetic test data.\n"
    (dest / "README.md").write_text(card, encoding="utf-8")
    return dest


def build_tiny_bert(dest: Path | str, *, vocab_words: Iterable[str] | None = None, num_labels: int = 2,
                    seed: int = 0) -> Path:
    """save_pretrained a tiny random BertForSequenceClassification + WordPiece tokenizer into `dest`.

    hidden 32, 2 layers, 2 heads; vocab = BERT specials + `vocab_words` (default: the sentiment words).
    Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json (transformers 5 writes no vocab.txt).
    """
    import tempfile

    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    words = sorted({w.lower() for w in (vocab_words or sentiment_vocab())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w in words if w not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=64)
        tokenizer.save_pretrained(dest)
    labels = LABEL_NAMES if num_labels == 2 else [f"LABEL_{i}" for i in range(num_labels)]
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, type_vocab_size=2, num_labels=num_labels,
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    model.save_pretrained(dest)
    return dest


def build_tiny_repos(root: Path | str, *, seed: int = 0) -> dict[tuple[str, str], Path]:
    """The standard tiny repos under `root`, keyed as FakeHub(repos=...) takes them:

    ("model", "org/tiny-bert")   -> root/model/tiny-bert
    ("dataset", "org/tiny-sst2") -> root/dataset/tiny-sst2   (default config, data/*.parquet)
    ("dataset", "org/tiny-glue") -> root/dataset/tiny-glue   (named configs "sst2" and "sst2_small")
    """
    root = Path(root)
    repos = {
        ("model", "org/tiny-bert"): build_tiny_bert(root / "model" / "tiny-bert", seed=seed),
        ("dataset", "org/tiny-sst2"): build_sentiment_dataset(root / "dataset" / "tiny-sst2", seed=seed,
                                                              pretty_name="tiny-sst2"),
        ("dataset", "org/tiny-glue"): build_sentiment_dataset(root / "dataset" / "tiny-glue", seed=seed,
                                                              config_names=("sst2", "sst2_small"),
                                                              pretty_name="tiny-glue"),
    }
    return repos


if __name__ == "__main__":  # manual smoke: python tests/fakehub.py /tmp/repos  -> serves until Ctrl-C
    import sys
    import time

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fakehub-repos")
    with FakeHub(repos=build_tiny_repos(out)) as hub:
        print(hub.url, flush=True)
        while True:
            time.sleep(3600)


def build_wheel(dest: Path, name: str = "reprotiny", version: str = "0.1") -> Path:
    """A pure-Python wheel made here (no index involved): `import reprotiny` answers 42."""
    dest.mkdir(parents=True, exist_ok=True)
    whl = dest / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "ANSWER = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: repro-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(whl, "w") as z:
        for p, text in {**files, f"{info}/RECORD": record}.items():
            z.writestr(p, text)
    return whl
