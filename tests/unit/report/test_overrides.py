import json

import pytest

from graders.overrides import OverrideError, add_override
from graders.report import load_report, refresh_report
from graders.rubric import load_graded


def _judge(d):
    return load_graded(d / "graded.json")


def test_override_changes_score_everywhere_and_keeps_the_judge_tree(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    before = load_report(d)
    assert before["grade"]["score"] == pytest.approx(0.5)
    judge_bytes = (d / "graded.json").read_bytes()
    add_override(d, _judge(d), "leaf-seed", 1.0, "seed is set on line 9", "ana")
    after = refresh_report(d)
    # code group: 2/2, results group 1/2 -> 0.75
    assert after["grade"]["score"] == pytest.approx(0.75)
    assert after["grade"]["judge_score"] == pytest.approx(0.5)
    assert after["grade"]["overridden_leaves"] == ["leaf-seed"]
    assert "0.75" in after["verdict"] and "judge alone: 0.50" in after["verdict"]
    assert (d / "graded.json").read_bytes() == judge_bytes
    html, md = (d / "report.html").read_text(), (d / "report.md").read_text()
    assert "0.75" in html and "Overridden by <b>ana</b>" in html and "seed is set on line 9" in html
    assert "0.75" in md and "overridden by ana" in md
    leaf = after["graded_tree"]["sub_tasks"][0]["sub_tasks"][1]
    assert leaf["score"] == 1.0 and leaf["judge_metadata"]["override"]["who"] == "ana"
    assert after["graded_tree"]["sub_tasks"][0]["score"] == pytest.approx(1.0)


def test_override_of_an_unscored_leaf_raises_coverage_and_withdraw_restores(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    add_override(d, _judge(d), "leaf-gap", 0.0, "81.2 vs 80.0 is not the point; table row missing", "bo")
    r = refresh_report(d)
    assert r["grade"]["coverage"] == pytest.approx(1.0) and r["grade"]["score"] == pytest.approx(0.5)
    add_override(d, _judge(d), "leaf-gap", None, "my mistake", "bo")
    r = refresh_report(d)
    assert r["grade"]["coverage"] == pytest.approx(0.75) and r["grade"]["overridden_leaves"] == []
    entries = json.loads((d / "overrides.json").read_text())
    assert [e["who"] for e in entries] == ["bo", "bo"] and all(e["at"] for e in entries)


@pytest.mark.parametrize("leaf,score,reason,who,match", [
    ("nope", 1.0, "r", "a", "no rubric node"),
    ("g-code", 1.0, "r", "a", "not a leaf"),
    ("leaf-seed", 0.5, "r", "a", "0 or 1"),
    ("leaf-seed", 1.0, "  ", "a", "reason"),
    ("leaf-seed", 1.0, "r", "", "who"),
])
def test_bad_overrides_are_refused(tmp_path, fx, leaf, score, reason, who, match):
    d = fx.finished_run(tmp_path)
    with pytest.raises(OverrideError, match=match):
        add_override(d, _judge(d), leaf, score, reason, who)
    assert not (d / "overrides.json").exists()
