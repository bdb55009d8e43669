"""Rubric models: lossless round trip on upstream data, and validation with clear messages (J11)."""
import copy
import glob
import json
from pathlib import Path

import pytest

from graders.rubric import (duplicate_ids, MAX_DEPTH, GradedTaskNode, RubricError, dumps, load_graded, load_rubric,
                            save_rubric)

UPSTREAM_DUPLICATE_IDS = {"bbox", "bridging-data-gaps"}


def test_all_23_rubrics_round_trip_byte_for_byte(paperbench_dir):
    files = sorted((paperbench_dir / "rubrics").glob("*/rubric.json"))
    assert len(files) == 23
    for f in files:
        raw = f.read_text(encoding="utf-8")
        node = load_rubric(f, allow_duplicate_ids=True)
        assert json.loads(dumps(node)) == json.loads(raw), f
        assert dumps(node) == raw, f  # upstream: indent=4, ASCII escapes, no trailing newline


def test_strict_load_rejects_exactly_the_upstream_rubrics_that_reuse_ids(paperbench_dir):
    rejected = set()
    for f in sorted((paperbench_dir / "rubrics").glob("*/rubric.json")):
        try:
            load_rubric(f, allow_duplicate_ids=False)
        except RubricError as exc:
            assert "duplicate id" in str(exc)
            rejected.add(f.parent.name)
    assert rejected == UPSTREAM_DUPLICATE_IDS


def test_rubric_check_passes_all_23_and_warns_about_reused_ids(paperbench_dir):
    """Upstream's reused ids are accepted with a warning (verdicts are keyed by position)."""
    from typer.testing import CliRunner

    from agent.cli import app

    warned = set()
    for f in sorted((paperbench_dir / "rubrics").glob("*/rubric.json")):
        r = CliRunner().invoke(app, ["rubric", "check", str(f)])
        assert r.exit_code == 0, (f, r.output)
        if "id(s) are used by more than one node" in r.output:
            warned.add(f.parent.name)
    assert warned == UPSTREAM_DUPLICATE_IDS
    strict = CliRunner().invoke(app, ["rubric", "check", str(paperbench_dir / "rubrics" / "bbox" / "rubric.json"),
                                      "--strict"])
    assert strict.exit_code == 2 and "duplicate id" in strict.output


def test_graded_trees_round_trip(paperbench_dir):
    files = sorted((paperbench_dir / "judge_eval").glob("*/expected_result.json"))
    assert len(files) == 5
    for f in files:
        raw = f.read_text(encoding="utf-8")
        node = load_graded(f)
        assert json.loads(dumps(node)) == json.loads(raw)
        assert dumps(node) == raw.rstrip("\n")  # some upstream files end with a newline, some do not


def test_bundled_sample_round_trips(fixtures_dir, tmp_path):
    src = fixtures_dir / "paperbench" / "judge_eval" / "semantic-self-consistency" / "expected_result.json"
    node = load_graded(src)
    assert isinstance(node, GradedTaskNode)
    out = tmp_path / "out.json"
    save_rubric(node, out)
    assert json.loads(out.read_text()) == json.loads(src.read_text())
    rub = fixtures_dir / "paperbench" / "rubrics" / "semantic-self-consistency" / "rubric.json"
    assert dumps(load_rubric(rub)) == rub.read_text()


def test_project_papers_rubrics_load():
    # PaperBench's test_rubrics_load, for the rubrics bundled with papers/.
    root = Path(__file__).resolve().parents[3] / "papers"
    for f in glob.glob(str(root / "*" / "rubric.json")):
        load_rubric(f)


@pytest.fixture
def tiny(fixtures_dir):
    return json.loads((fixtures_dir / "tiny_rubric.json").read_text())


def _leaf(d):
    return d["sub_tasks"][0]["sub_tasks"][0]


def _reject(data, *words):
    with pytest.raises(RubricError) as err:
        load_rubric(data)
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_valid_tiny_rubric_loads(tiny):
    node = load_rubric(tiny)
    assert [leaf.id for leaf in node.leaves()] == ["code-train", "code-lr", "exec-train", "res-acc", "res-table2"]


def test_duplicate_id_names_both_places_when_strict(tiny):
    tiny["sub_tasks"][1]["sub_tasks"][0]["id"] = "code-train"
    with pytest.raises(RubricError) as err:
        load_rubric(tiny, allow_duplicate_ids=False)
    assert "code-train" in str(err.value) and "duplicate id" in str(err.value) and "first used at" in str(err.value)
    assert duplicate_ids(load_rubric(tiny)) == ["code-train"]


def test_id_cycle_via_ancestor(tiny):
    _leaf(tiny)["id"] = "root"
    _reject(tiny, "'root'", "ancestors")


def test_negative_weight(tiny):
    _leaf(tiny)["weight"] = -1
    _reject(tiny, "code-train", "negative weight")


def test_all_zero_weights(tiny):
    for c in tiny["sub_tasks"][0]["sub_tasks"]:
        c["weight"] = 0
    _reject(tiny, "'code'", "weight 0")


def test_single_zero_weight_sibling_is_fine(tiny):
    _leaf(tiny)["weight"] = 0
    load_rubric(tiny)


def test_leaf_without_category(tiny):
    _leaf(tiny)["task_category"] = None
    _reject(tiny, "code-train", "without task_category")


def test_internal_node_with_category(tiny):
    tiny["sub_tasks"][0]["task_category"] = "Code Development"
    _reject(tiny, "'code'", "only leaves carry a category")


def test_unknown_category(tiny):
    _leaf(tiny)["task_category"] = "Vibes"
    _reject(tiny, "code-train", "unknown task_category 'Vibes'")
    _leaf(tiny)["task_category"] = "Code Development"
    _leaf(tiny)["finegrained_task_category"] = "Misc"
    _reject(tiny, "code-train", "finegrained")


def test_string_weight_is_not_coerced(tiny):
    _leaf(tiny)["weight"] = "2"
    _reject(tiny, "code-train", "weight")


def test_bool_weight_rejected(tiny):
    _leaf(tiny)["weight"] = True
    _reject(tiny, "code-train", "weight")


def test_unknown_field_rejected(tiny):
    _leaf(tiny)["subtasks"] = []
    _reject(tiny, "code-train", "subtasks")


def test_excessive_depth():
    node = {"id": "leaf", "requirements": "r", "weight": 1, "sub_tasks": [], "task_category": "Code Development"}
    for i in range(MAX_DEPTH + 1):
        node = {"id": f"n{i}", "requirements": "r", "weight": 1, "sub_tasks": [node]}
    _reject(node, "deeper than the maximum")


def test_very_deep_json_is_an_error_not_a_crash(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text('{"sub_tasks": [' * 5000 + "]}" * 5000)
    with pytest.raises(RubricError):
        load_rubric(p)


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(RubricError, match="not valid JSON"):
        load_rubric(p)
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric(tmp_path / "missing.json")


def test_graded_score_out_of_range(fixtures_dir):
    data = json.loads((fixtures_dir / "paperbench/judge_eval/semantic-self-consistency/expected_result.json").read_text())
    bad = copy.deepcopy(data)
    node = bad
    while node["sub_tasks"]:
        node = node["sub_tasks"][0]
    node["score"] = 2.0
    with pytest.raises(RubricError, match="outside"):
        load_graded(bad)
    node["score"] = 1.0
    node["valid_score"] = 0.5
    with pytest.raises(RubricError, match="valid_score"):
        load_graded(bad)
