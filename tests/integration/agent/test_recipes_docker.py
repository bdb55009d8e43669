"""The causal-LM recipe trains inside the real Docker sandbox: the image carries the `gguf`
package and the SmolLM2 GGUF file, so the code the agent writes runs there offline."""
from __future__ import annotations

import json

import pytest

from agent.plan import Experiment, Hyper, Plan
from agent.recipes import fill_config, get_recipe

from .conftest import submission_files
from .test_recipes import LEARN, learned_margin

pytestmark = pytest.mark.docker


@pytest.fixture
def docker_sandbox(docker_engine):
    # an engine answers (or the test skips/fails by REPRO_REQUIRE_DOCKER): a sandbox that then
    # cannot start is a broken sandbox, and the test fails on it
    from sandbox import open_sandbox

    with open_sandbox("docker", run_id="recipe-docker-test") as box:
        yield box


def test_image_ships_the_smollm2_gguf(docker_sandbox):
    r = docker_sandbox.exec("ls -l $REPRO_MODELS && python -c 'import gguf; print(gguf.__name__)'", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in r.stdout and "gguf" in r.stdout


def test_sft_recipe_trains_in_the_sandbox(docker_sandbox, tmp_path):
    from agent.recipes.tiny import write_tiny_gguf

    plan = Plan(task="t", paper_model="GPT-2", paper_dataset="IMDb", causal_model="tiny.gguf",
                experiments=[Experiment(id="sft", name="sft", recipe="sft")],
                hyper=Hyper(train_limit=32, batch_size=8, max_length=32, learning_rate={"sft": 1e-2}))
    sub = tmp_path / "submission"
    sub.mkdir()
    for rel, text in submission_files(plan).items():
        (sub / rel).write_text(text)
    # all weights train (as in the host test): a random tiny model learns byte statistics fast
    (sub / "train.py").write_text(fill_config((sub / "train.py").read_text(),
                                              get_recipe("sft").config(plan) | {"peft": None}))
    (sub / "models").mkdir()
    write_tiny_gguf(sub / "models" / "tiny.gguf")
    docker_sandbox.copy_in(sub, "/workspace/submission")
    r = docker_sandbox.exec("cd /workspace/submission && REPRO_MODELS=/workspace/submission/models "
                            "python train.py --method sft --out results/sft", timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = json.loads(docker_sandbox.read_file("/workspace/submission/results/sft/metrics.json"))
    assert m["method"] == "sft"
    assert m["metrics"]["perplexity"] < 0.8 * m["before"]["perplexity"]


def test_dpo_recipe_trains_in_the_sandbox(docker_sandbox, tmp_path):
    import math

    from agent.recipes.tiny import write_tiny_gguf

    plan = Plan(task="t", paper_model="GPT-2", paper_dataset="IMDb", causal_model="tiny.gguf",
                experiments=[Experiment(id="dpo", name="dpo", recipe="dpo")],
                hyper=Hyper(train_limit=24, batch_size=8, max_length=40, learning_rate={"dpo": 2e-2}))
    sub = tmp_path / "submission"
    (sub / "models").mkdir(parents=True)
    for rel, text in submission_files(plan).items():
        (sub / rel).write_text(text)
    write_tiny_gguf(sub / "models" / "tiny.gguf")
    docker_sandbox.copy_in(sub, "/workspace/submission")
    r = docker_sandbox.exec("cd /workspace/submission && REPRO_MODELS=/workspace/submission/models bash reproduce.sh",
                            timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = json.loads(docker_sandbox.read_file("/workspace/submission/results/dpo/metrics.json"))
    loss = m["curves"]["loss"]
    assert loss[0][1] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at the start
    assert loss[-1][1] < loss[0][1]


def test_qlora_on_a_cpu_sandbox_says_so_and_trains_lora(docker_sandbox, tmp_path):
    plan = Plan(task="t", paper_model="BERT-base", paper_dataset="IMDb",
                experiments=[Experiment(id="qlora", name="qlora", recipe="qlora")],
                hyper=Hyper(**LEARN))
    sub = tmp_path / "submission"
    sub.mkdir()
    for rel, text in submission_files(plan).items():
        (sub / rel).write_text(text)
    docker_sandbox.copy_in(sub, "/workspace/submission")
    r = docker_sandbox.exec("cd /workspace/submission && bash reproduce.sh", timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = json.loads(docker_sandbox.read_file("/workspace/submission/results/qlora/metrics.json"))
    assert m["device"] == "cpu" and m["deviations"][0]["what"] == "quantisation"
    assert 0 < m["trainable_params"] < m["total_params"]
    # LoRA in place of QLoRA still learns: above its before-training accuracy by more than the noise
    assert m["metrics"]["accuracy"] - m["before"]["accuracy"] > learned_margin(m["n_test"]), m


def test_rlhf_recipe_raises_the_reward_in_the_sandbox(docker_sandbox, tmp_path):
    """RLHF at its tested size on the real models, inside the sandbox: a MiniLM reward model from
    preference pairs, then GRPO of SmolLM2-135M against it. On held-out review openings the mean
    reward rises, the policy has moved (KL > 0) and the samples come before and after."""
    plan = Plan(task="t", paper_model="SmolLM2-135M-Instruct", paper_dataset="movie-review snippets",
                experiments=[Experiment(id="rlhf", name="RLHF", recipe="rlhf")])
    sub = tmp_path / "submission"
    sub.mkdir()
    for rel, text in submission_files(plan).items():
        (sub / rel).write_text(text)
    docker_sandbox.copy_in(sub, "/workspace/submission")
    r = docker_sandbox.exec("cd /workspace/submission && bash reproduce.sh", timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = json.loads(docker_sandbox.read_file("/workspace/submission/results/rlhf/metrics.json"))
    assert m["metrics"]["reward_model_accuracy"] > 0.8, m["metrics"]
    assert m["metrics"]["mean_reward"] > m["before"]["mean_reward"] + 0.05, (m["before"], m["metrics"])
    assert m["metrics"]["kl"] > 0
    assert len(m["samples"]["after"]) == 3 and all(s.startswith(("The ", "This ")) for s in m["samples"]["after"])
