"""Every recipe renders, trains a tiny model for real (seconds) and writes a valid metrics.json."""
from __future__ import annotations

import json
import math
import subprocess
import time

import pytest

from agent.plan import Experiment, Hyper, Plan
from agent.recipes import fill_config, get_recipe, registry
from graders.contract import parse_result
from tests.conftest import need_import

from .conftest import run_script, submission_files

TIMINGS: dict[str, float] = {}
GGUF = "gguf (transformers needs it to read GGUF files)"
# Enough data that learning shows through the test set's noise: at 48 sentences x 1 epoch every
# method ended *below* its untrained accuracy (0.54 after, 0.64 before, 50 test sentences); at
# 800 x 2 epochs each gains 0.10-0.15 on 200 test sentences (this machine, seed 42).
LEARN = dict(train_limit=800, epochs=2, batch_size=32, max_length=32)


def learned_margin(n_test: int) -> float:
    """Two standard errors of an accuracy near 0.5 on n_test items: a smaller gain is noise."""
    return 2 * math.sqrt(0.25 / n_test)


def _plan(methods, **hyper) -> Plan:
    return Plan(task="t", paper_model="BERT-base", paper_dataset="IMDb", causal_model="tiny.gguf",
                experiments=[Experiment(id=m, name=m, recipe=m) for m in methods], hyper=Hyper(**hyper))


def _write(tmp_path, plan):
    files = submission_files(plan)
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return files


def crash_in_epoch_2(trainer: str, method: str) -> str:
    """A driver that runs train.py's main() with its Trainer class made to crash once epoch 1 is saved."""
    return ("import sys, train\n"
            "from transformers import TrainerCallback\n"
            "class Crash(TrainerCallback):\n"
            "    def on_step_begin(self, args, state, control, **kw):\n"
            "        if state.epoch >= 1:\n"
            "            raise SystemExit('crash in epoch 2')\n"
            f"base = train.{trainer}\n"
            "class Crashing(base):\n"
            "    def __init__(self, *a, **kw):\n"
            "        super().__init__(*a, **{**kw, 'callbacks': [*(kw.get('callbacks') or []), Crash()]})\n"
            f"train.{trainer} = Crashing\n"
            f"sys.argv = ['train.py', '--method', '{method}', '--epochs', '2', '--out', 'results/{method}']\n"
            "train.main()\n")


def _metrics(tmp_path, method):
    return json.loads((tmp_path / "results" / method / "metrics.json").read_text())


def test_registry_has_every_method_one_module_each():
    reg = registry()
    assert set(reg) >= {"full", "head", "lora", "qlora", "sft", "dpo", "rlhf"}
    modules = {type(r).__module__ for r in reg.values()}
    assert len(modules) == len(reg)  # one module per method (peft style)
    with pytest.raises(KeyError, match="known"):
        get_recipe("no-such-recipe")


def test_classification_family_trains_all_four_methods(tmp_path, recipe_env):
    plan = _plan(["head", "lora", "qlora", "full"], **LEARN)
    files = _write(tmp_path, plan)
    assert set(files) == {"train.py", "reproduce.sh", "README.md"}
    assert "quantisation (QLoRA)" in files["README.md"]  # the CPU deviation is stated up front
    sh = files["reproduce.sh"]
    assert [f'python train.py --method {m} --out "results/{m}"' in sh for m in ("head", "lora", "qlora", "full")] == [True] * 4
    # The four methods in one interpreter (CI cost: imports once); the code run is train.py's main().
    # The driver also records which weights training moved: main() keeps its model to itself.
    driver = ("import json, sys, torch, train\n"
              "seen = {}\n"
              "build = train.build_model\n"
              "def spy(*a, **kw):\n"
              "    seen['model'] = model = build(*a, **kw)\n"
              "    seen['init'] = {n: p.detach().clone() for n, p in model.named_parameters()}\n"
              "    return model\n"
              "train.build_model = spy\n"
              "for m in ['head', 'lora', 'qlora', 'full']:\n"
              "    sys.argv = ['train.py', '--method', m, '--out', 'results/' + m]\n"
              "    train.main()\n"
              "    ps = dict(seen['model'].named_parameters())\n"
              "    moved = [n for n, p in ps.items() if not torch.equal(p.detach(), seen['init'][n])]\n"
              "    json.dump({'moved': moved, 'trainable': [n for n, p in ps.items() if p.requires_grad]},\n"
              "              open(f'results/{m}/moved.json', 'w'))\n")
    (tmp_path / "drive.py").write_text(driver)
    t0 = time.time()
    run_script(tmp_path, "python drive.py", recipe_env)
    TIMINGS["classification x4"] = time.time() - t0
    m = {k: _metrics(tmp_path, k) for k in ("head", "lora", "qlora", "full")}
    for k, v in m.items():
        assert v["method"] == k and set(v["metrics"]) == {"accuracy"}  # the submission contract's shape
        parse_result(tmp_path / "results" / k / "metrics.json")
        # the model learned: above its own before-training accuracy by more than the noise
        gain = v["metrics"]["accuracy"] - v["before"]["accuracy"]
        assert gain > learned_margin(v["n_test"]), (k, v["before"], v["metrics"], v["n_test"])
        assert v["n_train"] == 800 and v["config"]["seed"] == 42
        # only the result (and the driver's record) stay: the Trainer's checkpoints are for resuming only
        assert sorted(p.name for p in (tmp_path / "results" / k).iterdir()) == ["metrics.json", "moved.json"]
    assert m["head"]["trainable_params"] < m["lora"]["trainable_params"] < m["full"]["trainable_params"]
    assert m["full"]["trainable_params"] == m["full"]["total_params"]
    # QLoRA on a CPU host: says so, records the deviation, trains LoRA instead
    assert m["qlora"]["device"] == "cpu"
    assert m["qlora"]["deviations"] and m["qlora"]["deviations"][0]["what"] == "quantisation"
    assert m["qlora"]["trainable_params"] == m["lora"]["trainable_params"]
    assert m["lora"]["deviations"] == []
    # same seed, same data: every method starts from the same untrained head (LoRA starts as a no-op)
    assert len({v["before"]["accuracy"] for v in m.values()}) == 1, {k: v["before"] for k, v in m.items()}
    # training moves exactly the weights the method trains: all of them for full FT, none it froze
    for k in m:
        moved = json.loads((tmp_path / "results" / k / "moved.json").read_text())
        assert moved["moved"] and set(moved["moved"]) == set(moved["trainable"]), (k, moved)


def test_classification_resumes_from_the_trainers_epoch_checkpoint_after_a_crash(tmp_path, recipe_env):
    """LoRA, two epochs, a crash in epoch 2: the next run resumes from epoch 1's checkpoint (its
    accuracy after epoch 1 is not measured again), keeps the untouched model's before-number, and
    ends with the same result as a run that never crashed."""
    plan = _plan(["lora"], train_limit=48, batch_size=16, max_length=32, epochs=2)
    _write(tmp_path, plan)
    straight = run_script(tmp_path, "python train.py --method lora --epochs 2 --out results/straight", recipe_env)
    assert straight.stdout.count("test accuracy") == 2
    (tmp_path / "crash.py").write_text(crash_in_epoch_2("Trainer", "lora"))
    first = subprocess.run(["python", "crash.py"], cwd=tmp_path, env=recipe_env, capture_output=True, text=True,
                           timeout=240)
    assert first.returncode != 0 and "crash in epoch 2" in first.stderr, first.stderr[-2000:]
    assert list((tmp_path / "results" / "lora" / "trainer").glob("checkpoint-3"))  # epoch 1: 48 / 16 steps
    second = run_script(tmp_path, "python train.py --method lora --epochs 2 --out results/lora", recipe_env)
    assert "resuming from the last checkpoint" in second.stdout
    assert "accuracy before fine-tuning" not in second.stdout  # measured once, on the untouched model
    m, want = _metrics(tmp_path, "lora"), _metrics(tmp_path, "straight")
    assert m["before"] == want["before"] and m["metrics"] == want["metrics"]  # resumed = never crashed
    assert sorted(p.name for p in (tmp_path / "results" / "lora").iterdir()) == ["metrics.json"]  # resume state gone


def test_causal_lm_sft_from_gguf(tmp_path, recipe_env):
    need_import("gguf", GGUF)
    plan = _plan(["sft"], train_limit=32, batch_size=8, max_length=32, learning_rate={"sft": 1e-2})
    files = _write(tmp_path, plan)
    assert "gguf_file=" in files["train.py"] and "'model_name': 'tiny.gguf'" in files["train.py"]
    assert "'peft': 'lora'" in files["train.py"]  # LoRA by default; the test trains all weights
    config = get_recipe("sft").config(plan) | {"peft": None}
    (tmp_path / "train.py").write_text(fill_config(files["train.py"], config))
    t0 = time.time()
    run_script(tmp_path, "bash reproduce.sh", recipe_env)
    TIMINGS["sft"] = time.time() - t0
    m = _metrics(tmp_path, "sft")
    assert set(m["metrics"]) == {"perplexity"} and m["higher_is_better"] is False
    before, after = m["before"]["perplexity"], m["metrics"]["perplexity"]
    assert math.isfinite(before) and math.isfinite(after)
    assert 150 < before < 600  # a random 261-token byte-level model: close to uniform
    assert after < 0.8 * before  # four steps learn the text's byte statistics
    assert m["trainable_params"] == m["total_params"]
    assert [step for step, _ in m["curves"]["loss"]][-1] == 4


def test_dpo_from_preference_pairs(tmp_path, recipe_env):
    need_import("gguf", GGUF)
    plan = _plan(["dpo"], train_limit=24, batch_size=8, max_length=40, learning_rate={"dpo": 2e-2})
    _write(tmp_path, plan)
    t0 = time.time()
    run_script(tmp_path, "bash reproduce.sh", recipe_env)
    TIMINGS["dpo"] = time.time() - t0
    m = _metrics(tmp_path, "dpo")
    assert set(m["metrics"]) == {"preference_accuracy"}
    assert 0.0 <= m["before"]["preference_accuracy"] <= 1.0
    loss, margin = m["curves"]["loss"], m["curves"]["reward_margin"]
    assert len(loss) == 3
    # policy == reference at the start: the DPO loss is exactly log 2
    assert loss[0][1] == pytest.approx(math.log(2), abs=1e-3)
    assert loss[-1][1] < loss[0][1]  # the implicit reward margin grows
    assert margin[-1][1] > 0


def test_dpo_resumes_from_the_trainers_checkpoint_after_a_crash(tmp_path, recipe_env):
    """A crash in epoch 2 (after epoch 1's checkpoint): the next run resumes from that checkpoint
    (not from scratch), keeps the before-number of the untouched model and the whole loss curve."""
    need_import("gguf", GGUF)
    plan = _plan(["dpo"], train_limit=16, batch_size=8, max_length=40, epochs=2, learning_rate={"dpo": 2e-2})
    _write(tmp_path, plan)
    (tmp_path / "crash.py").write_text(crash_in_epoch_2("DPOTrainer", "dpo"))
    first = subprocess.run(["python", "crash.py"], cwd=tmp_path, env=recipe_env, capture_output=True, text=True,
                           timeout=240)
    assert first.returncode != 0 and "crash in epoch 2" in first.stderr, first.stderr[-2000:]
    assert list((tmp_path / "results" / "dpo" / "trainer").glob("checkpoint-2"))  # epoch 1's checkpoint
    assert not (tmp_path / "results" / "dpo" / "metrics.json").exists()
    second = run_script(tmp_path, "python train.py --method dpo --epochs 2 --out results/dpo", recipe_env)
    assert "resuming from the last checkpoint" in second.stdout
    assert "preference accuracy before tuning" not in second.stdout  # measured once, on the untouched model
    m = _metrics(tmp_path, "dpo")
    assert [s for s, _ in m["curves"]["loss"]] == [1, 2, 3, 4]  # epoch 1 from the first run, epoch 2 resumed
    assert m["curves"]["loss"][0][1] == pytest.approx(math.log(2), abs=1e-3)
    assert sorted(p.name for p in (tmp_path / "results" / "dpo").iterdir()) == ["metrics.json"]  # resume state gone


def test_rlhf_smoke_run_has_every_part(tmp_path, recipe_env):
    """The RLHF script's every code path, small (REPRO_SMOKE=1, the tiny causal LM): a reward model
    (MiniLM + TRL's RewardTrainer), a GRPO step, and a metrics file with the reward and the KL before
    and after, the reward model's accuracy and sample generations. That RLHF raises the reward is
    tested at full size with SmolLM2 in the sandbox (test_recipes_docker.py)."""
    need_import("trl", "trl (the rlhf recipe's RewardTrainer and GRPOTrainer)")
    need_import("gguf", GGUF)
    files = _write(tmp_path, _plan(["rlhf"]))
    assert "RewardTrainer(" in files["train.py"] and "GRPOTrainer(" in files["train.py"]
    t0 = time.time()
    run_script(tmp_path, "REPRO_SMOKE=1 bash reproduce.sh", recipe_env, timeout=600)
    TIMINGS["rlhf smoke"] = time.time() - t0
    m = _metrics(tmp_path, "rlhf")
    parse_result(tmp_path / "results" / "rlhf" / "metrics.json")
    assert set(m["metrics"]) == {"mean_reward", "kl", "reward_model_accuracy"} and set(m["before"]) == {"mean_reward", "kl"}
    assert m["metrics"]["kl"] >= 0 and m["before"]["kl"] == 0 and 0 <= m["metrics"]["reward_model_accuracy"] <= 1
    assert len(m["samples"]["before"]) == len(m["samples"]["after"]) == 2
    assert m["curves"]["reward"] and m["curves"]["reward_model_loss"]


def test_mixed_families_get_one_script_each(tmp_path):
    plan = _plan(["lora", "sft", "dpo"], train_limit=8)
    files = submission_files(plan)
    assert {"train_sequence_classification.py", "train_causal_lm.py", "train_preference.py"} <= set(files)
    sh = files["reproduce.sh"]
    assert 'python train_causal_lm.py --method sft --out "results/sft"' in sh
    assert sh.index("--method lora") < sh.index("--method sft") < sh.index("--method dpo")
