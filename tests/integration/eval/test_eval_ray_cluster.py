"""`repro eval --ray ADDRESS` on a real multi-node Ray cluster, as far as one machine allows.

Two Ray nodes are started with the ray CLI on 127.0.0.1 (a head, ``node_a``, and a second node,
``node_b``: one CPU each, a custom resource each, token authentication, their own temp dirs and
free ports). Two configurations are pinned to them with ``resources: {custom: {node_X: 1}}``;
the eval.json of each run must name the node it asked for. The second node runs with
REPRO_TEST_HANG_AT in its environment (what ``ray start`` had is what its workers get), so its run
stops at the grading step; there its raylet is SIGKILLed, as a lost node. The code's answer is
checked: the task is not retried (``max_retries=0``), the driver records the run as crashed,
a plain rerun keeps it as failed, and after the node is back ``--retry-failed`` finishes it as a
new attempt on the new node. Scripted models, local sandboxes: a replication takes seconds.

A multi-node Ray cluster binds its servers to every interface (a real cluster must be reachable),
so the cluster test runs in a network namespace it creates (``unshare --net``: only ``lo``, brought
up): nothing it starts can be reached from, or reach, beyond this machine's loopback.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from agent.eval.config import EvalConfig, Resources
from tests.conftest import need
from agent.eval.doubles import make_demo_papers

RAY_CLI = Path(sys.executable).parent / "ray"
LOOPBACK = "127.0.0.1"
# Each node advertises its own loopback address, as each machine of a real cluster has its own
# (Ray would turn "127.0.0.1" itself into the machine's routable address when joining nodes).
NODE_IP = {"node_a": "127.0.0.2", "node_b": "127.0.0.3"}
PAPER = "demo-minilm-sentiment"
CONFIG_YAML = """\
name: {name}
model_factory: agent.eval.doubles:scripted_models
factory_args: {{skill: 0.7}}
run: {{sandbox_backend: local, train_limit: 100, epochs: 1}}
resources: {{num_cpus: 1, custom: {{{node}: 1}}}}
"""
# Ask the cluster for its live nodes (a separate process: this one never becomes a Ray driver).
NODES_PY = """\
import json, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
want, gone, deadline = set(sys.argv[2].split(",")), set(sys.argv[3].split(",")) - {""}, time.time() + 60
while True:
    alive = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    if (want <= {k for r in alive.values() for k in r} and not gone & set(alive)) or time.time() > deadline:
        break
    time.sleep(0.2)
print(json.dumps(alive))
"""


# ---------------------------------------------------------------- custom resources (no cluster)
def test_a_configuration_declares_custom_resources(tmp_path):
    cfg_file = tmp_path / "pinned.yaml"
    cfg_file.write_text(CONFIG_YAML.format(name="pinned", node="node_a"))
    from agent.eval.config import load_eval_configs

    (cfg,) = load_eval_configs([cfg_file])
    assert cfg.resources.ray_options() == {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {"node_a": 1.0}}
    assert Resources().ray_options() == {"num_cpus": 1.0, "num_gpus": 0.0}  # no custom: not passed to Ray
    # the pin is part of the configuration's identity...
    assert cfg.fingerprint != EvalConfig.model_validate({**cfg.model_dump(), "resources": {"num_cpus": 1}}).fingerprint
    # ...but configurations without one keep the run ids they had before custom resources existed
    assert EvalConfig(name="base", run={"sandbox_backend": "local"}).fingerprint == "5f9f75d8"
    for bad in ({"CPU": 1}, {"node_a": 0}, {"memory": 2}):
        with pytest.raises(ValueError):
            Resources(custom=bad)


def test_a_custom_resource_no_live_node_has_fails_fast(tmp_path, monkeypatch):
    import ray

    from agent.eval.execution import EvalExecutionError, RayRunner
    from agent.eval.tasks import PaperEntry, Task

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 4.0, "node_a": 1.0}},
                                               {"Alive": False, "Resources": {"CPU": 4.0, "node_b": 1.0}}])
    paper = PaperEntry(paper_id="p1", dir=tmp_path, pdf=tmp_path / "paper.pdf", rubric=None)

    def task(node: str) -> Task:
        return Task(paper=paper, config=EvalConfig(name=node.replace("_", "-"), run={"sandbox_backend": "fake"},
                                                   resources=Resources(custom={node: 1})),
                    seed=0, attempt=1, runs_dir=tmp_path)

    runner = RayRunner("127.0.0.1:6379", parallel=2)
    runner.check_feasible([task("node_a")])
    with pytest.raises(EvalExecutionError, match=r"'node-b' asks for .*'node_b': 1\.0.*nodes: \[\{'CPU': 4\.0\}\]"):
        runner.check_feasible([task("node_b")])  # only a dead node has it


# ---------------------------------------------------------------- a two-node cluster on 127.0.0.1
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Cluster:
    """Ray nodes started by this test (``ray start --block``, one session each); ended by pid."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.port = _free_port()
        self.address = f"{NODE_IP['node_a']}:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.lost: set[str] = set()  # nodes this test killed
        self.seen: set[int] = set()  # every pid of every node we started, as it was seen

    def start(self, name: str, *, head: bool = False, extra_env: dict[str, str] | None = None) -> str:
        tmp = self.root / f"{name}-{len(self.procs)}"
        tmp.mkdir()
        cmd = [str(RAY_CLI), "start", "--block", "--node-ip-address", NODE_IP[name], "--num-cpus", "1",
               "--resources", json.dumps({name: 1}), "--temp-dir", str(tmp), "--disable-usage-stats",
               "--object-store-memory", str(80 * 2**20), "--min-worker-port", "0", "--max-worker-port", "0",
               "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
               "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
               "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port())]
        if head:
            # a lost node is noticed within a few seconds (Ray's default health check: about 30 s)
            cmd += ["--head", "--port", str(self.port), "--include-dashboard=false",
                    "--system-config", json.dumps({"health_check_period_ms": 1000,
                                                   "health_check_failure_threshold": 3})]
        else:
            cmd += ["--address", self.address]
        log = (self.root / f"{tmp.name}.log").open("w")
        self.procs[tmp.name] = subprocess.Popen(cmd, env={**self.env, **(extra_env or {})}, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return tmp.name

    def tree(self, key: str) -> list[psutil.Process]:
        try:
            kids = psutil.Process(self.procs[key].pid).children(recursive=True)
        except psutil.Error:
            kids = []
        self.seen |= {p.pid for p in kids} | {self.procs[key].pid}
        return kids

    def nodes(self, *want: str, gone: tuple[str, ...] = ()) -> dict[str, dict]:
        """node id -> resources of the live nodes, once every resource in ``want`` is on one and
        no node of ``gone`` (ids) is alive any more."""
        for key, proc in self.procs.items():
            assert proc.poll() is None or key in self.lost, \
                f"`ray start` for {key} exited: {(self.root / f'{key}.log').read_text()[-3000:]}"
            self.tree(key)
        out = subprocess.run([sys.executable, "-c", NODES_PY, self.address, ",".join(want), ",".join(gone)], env=self.env,
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr[-3000:]
        alive = json.loads(out.stdout.strip().splitlines()[-1])
        for key in self.procs:
            self.tree(key)
        return alive

    def ours(self) -> list[psutil.Process]:
        """Our nodes' processes still alive: those seen in our trees, and any whose command line
        names our temp dir (Ray's workers and agents carry it)."""
        found = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(p.info.get("cmdline") or [])
            if p.info["pid"] in self.seen or str(self.root) in cmdline:
                found.append(p)
        return [p for p in found if p.pid != os.getpid()]

    def stop(self) -> None:
        for key, proc in self.procs.items():
            self.tree(key)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        left = self.ours()
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=15)


@pytest.fixture
def cluster():
    root = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPRO_TEST_", "RAY_"))}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"})
    c = Cluster(root, env)
    try:
        yield c
    finally:
        c.stop()
        assert not c.ours(), "processes of the test's Ray nodes outlived it"
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _eval(cluster: Cluster, papers: Path, cfgs: list[Path], out: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "agent.cli", "eval", str(papers), "--seeds", "1", "--parallel", "2",
           "--ray", cluster.address, "--out", str(out), "--json", "--progress-every", "1", *extra]
    for c in cfgs:
        cmd += ["--config", str(c)]
    log = out.parent / f"driver-{len(list(out.parent.glob('driver-*.log')))}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=cluster.env, cwd=out.parent, stdout=subprocess.PIPE, stderr=fh, text=True)
    if not wait:
        return proc, log
    stdout, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log.read_text()[-4000:]
    return json.loads(stdout.strip().splitlines()[-1])


def _eval_json(out: Path, run_id: str) -> dict:
    return json.loads((out / "runs" / run_id / "eval.json").read_text())


IN_NETNS = "REPRO_NETNS_INNER"


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback  # '::ffff:127.0.0.2' too


def _rerun_in_own_netns(test: str) -> None:
    """Run this module's ``test`` again in a new network namespace holding only ``lo``."""
    import shutil

    need(None if shutil.which("unshare") and shutil.which("ip") else "no unshare / ip on PATH",
         "util-linux unshare and iproute2 (the cluster runs in its own network namespace)")
    userns = [] if os.geteuid() == 0 else ["--map-root-user"]
    cmd = ["unshare", "--net", *userns, "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"{__file__}::{test}"]
    proc = subprocess.run(cmd, env={**os.environ, IN_NETNS: "1"}, cwd=Path(__file__).parents[3],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]


def test_eval_on_a_two_node_cluster_pins_configs_and_survives_a_lost_node(cluster, tmp_path, request):
    if os.environ.get(IN_NETNS) != "1":
        return _rerun_in_own_netns(request.node.name)
    assert [name for _, name in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
    papers = tmp_path / "paperset"
    make_demo_papers(papers, variants=0)
    cfgs = []
    for name, node in (("on-a", "node_a"), ("on-b", "node_b")):
        p = tmp_path / f"{name}.yaml"
        p.write_text(CONFIG_YAML.format(name=name, node=node))
        cfgs.append(p)
    from agent.eval.config import load_eval_configs

    ids = {c.name: f"{PAPER}--{c.config_id}--s0" for c in load_eval_configs(cfgs)}
    out = tmp_path / "out"

    cluster.start("node_a", head=True)
    # node_b's workers inherit `ray start`'s environment: its run stops (sleeps) before grading
    b_key = cluster.start("node_b", extra_env={"REPRO_TEST_HANG_AT": "node:grade"})
    nodes = cluster.nodes("node_a", "node_b")
    by_res = {res_name: nid for nid, res in nodes.items() for res_name in res if res_name.startswith("node_")}
    assert set(by_res) == {"node_a", "node_b"} and len(nodes) == 2, nodes
    # the nodes advertise loopback addresses, and every connection of theirs stays on loopback
    # (they listen on all interfaces, and in this namespace loopback is the only one)
    assert sorted(n.split(":", 1)[1] for r in nodes.values() for n in r
                  if n.startswith("node:") and n != "node:__internal_head__") == sorted(NODE_IP.values())
    peers = {c.raddr.ip for c in psutil.net_connections(kind="inet")
             if c.raddr and c.pid in {p.pid for p in cluster.ours()}}
    assert peers and all(_loopback(ip) for ip in peers), peers

    # 1. One `repro eval --ray`: each configuration's run lands on its node; node_b dies mid-run.
    driver, log = _eval(cluster, papers, cfgs, out, wait=False)
    hung = out / "runs" / f"{ids['on-b']}--a1" / "hang.marker"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (hung.exists() and (out / "runs" / f"{ids['on-a']}--a1" / "eval.json").exists()):
        assert driver.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    assert hung.exists(), f"node_b's run never reached grading: {log.read_text()[-3000:]}"
    worker_pid = int(hung.read_text())
    (raylet,) = [p for p in cluster.tree(b_key) if p.name() == "raylet"]
    assert worker_pid in {p.pid for p in cluster.tree(b_key)}, "the hung run is not a worker of node_b"
    cluster.lost.add(b_key)
    raylet.kill()  # the node is lost (its raylet SIGKILLed; its workers go with it)
    stdout, _ = driver.communicate(timeout=120)
    assert driver.returncode == 0, log.read_text()[-4000:]
    first = json.loads(stdout.strip().splitlines()[-1])
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE
    a1 = _eval_json(out, f"{ids['on-a']}--a1")
    assert a1["status"] == "done" and a1["node_id"] == by_res["node_a"], (a1, by_res)
    b1 = _eval_json(out, f"{ids['on-b']}--a1")
    # not retried by Ray (max_retries=0): the driver wrote the crash, with its cause
    assert b1["status"] == "error" and b1["cause"].startswith("task crashed:"), b1
    assert first["outcomes"] == {"done": 1, "error": 1}, first

    # 2. A plain rerun keeps the crashed run as failed (the node is still gone: nothing to schedule).
    from agent.eval.tasks import discover_papers, plan_tasks, scan

    plan = plan_tasks(scan(discover_papers(papers), load_eval_configs(cfgs), 1, out / "runs"), out / "runs",
                      retry_failed=False)
    assert (plan.run, plan.skipped_done, plan.skipped_failed) == ([], 1, 1)

    # 3. node_b back (a new node, without the hang): --retry-failed finishes the run there, as attempt 2.
    cluster.start("node_b")
    nodes = cluster.nodes("node_a", "node_b", gone=(by_res["node_b"],))
    new_b = next(nid for nid, res in nodes.items() if "node_b" in res)
    assert new_b != by_res["node_b"]
    retry = _eval(cluster, papers, cfgs, out, "--retry-failed")
    assert retry["ran_run_ids"] == [f"{ids['on-b']}--a2"] and retry["outcomes"] == {"done": 1}, retry
    b2 = _eval_json(out, f"{ids['on-b']}--a2")
    assert b2["status"] == "done" and b2["resumed"] is False and b2["node_id"] == new_b, (b2, new_b)
    assert _eval_json(out, f"{ids['on-a']}--a1") == a1  # the finished run was not touched
    lb = json.loads((out / "leaderboard.json").read_text())
    assert {c["config"]: c["n"] for c in lb["cells"]} == {"on-a": 1, "on-b": 1}
    assert all(c["failures"] == [] for c in lb["cells"])  # the latest attempt counts
