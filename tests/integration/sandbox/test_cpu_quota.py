"""A CPU quota reaches the code in the sandbox as thread counts: torch sizes its pool by the
host's cores otherwise, and a 1-core quota with a 2-thread pool only waits on itself."""
from __future__ import annotations

import pytest

from sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.docker


def test_the_quota_sets_thread_counts_and_the_callers_env_wins(docker_image, run_id):
    from sandbox.docker import DockerSandbox

    with DockerSandbox(SandboxPolicy(cpus=1.0), run_id=f"{run_id}-cpu", image=docker_image) as sb:
        assert sb.container.attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
        r = sb.exec("echo $OMP_NUM_THREADS $MKL_NUM_THREADS", timeout=30)
        assert r.stdout.split() == ["1", "1"]
        r = sb.exec("python -c 'import torch; print(torch.get_num_threads())'", timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
        assert sb.exec("echo $OMP_NUM_THREADS", timeout=30, env={"OMP_NUM_THREADS": "3"}).stdout.strip() == "3"
