"""The bundled demo paper prints exactly the numbers of the run kept beside it (run/results)."""
import json
from pathlib import Path

import pytest

from papers import load_paper

DEMO = Path(__file__).resolve().parents[3] / "papers" / "demo-minilm-sentiment"
ROWS = {"head": "Classifier head only", "lora": "LoRA", "full": "Full fine-tuning"}


@pytest.fixture(scope="module")
def printed():
    paper = load_paper(DEMO / "paper.pdf")
    return {(r.row, r.column): r.value for r in paper.results}, paper


def test_table_matches_the_run_metrics(printed):
    values, _ = printed
    for method, row in ROWS.items():
        m = json.loads((DEMO / "run" / "results" / method / "metrics.json").read_text())
        assert values[(row, "Accuracy")] == pytest.approx(round(100 * m["metrics"]["accuracy"], 1))
        assert values[(row, "Trainable params")] == m["trainable_params"]
        assert values[("Before fine-tuning", "Accuracy")] == pytest.approx(round(100 * m["before"]["accuracy"], 1))


def test_paper_states_split_seed_and_command(printed):
    _, paper = printed
    m = json.loads((DEMO / "run" / "results" / "head" / "metrics.json").read_text())
    text = paper.text()
    assert f"({m['n_test']} sentences)" in text and f"({m['n_train']} sentences)" in text
    assert f"seed {m['config']['seed']}" in text
    assert "bash reproduce.sh" in text
    assert (DEMO / "run" / "reproduce.sh").read_text().count("python train.py --method") == 3


def test_paper_says_its_numbers_were_re_derived_with_the_trainer_scaffold(printed):
    """The numbers come from the Trainer-based scaffold (run/train.py); the paper says they moved and by how much."""
    _, paper = printed
    text = " ".join(paper.text().split())
    results = json.loads((DEMO / "results.json").read_text())
    assert "from transformers import" in (DEMO / "run" / "train.py").read_text()
    assert "Trainer(model=model" in (DEMO / "run" / "train.py").read_text()
    assert "trained with transformers' Trainer with peft" in text
    assert "derived when the training code moved from a hand-written PyTorch training loop to transformers' " \
           "Trainer with peft" in text
    moved = max(abs(results[k]["after"] - results["rederived"]["previous"][k]) for k in ROWS)
    assert f"by at most {results['rederived']['max_points']} points" in text
    assert results["rederived"]["max_points"] == round(100 * max(moved, abs(results["before"] -
                                                                          results["rederived"]["previous"]["before"])), 1)


def test_rubric_is_valid_paperbench():
    from graders.rubric import load_rubric

    leaves = list(load_rubric(DEMO / "rubric.json").leaves())
    assert 15 <= len(leaves) <= 40
    assert {leaf.task_category for leaf in leaves} == {"Code Development", "Code Execution", "Result Analysis"}
