import json

import pytest

from agent import review_store as rs


def test_request_then_approve_writes_decision_file(tmp_path):
    req = rs.request_review(tmp_path, stage="plan", summary="look")
    assert rs.pending_review(tmp_path)["id"] == req["id"]
    dec = rs.record_decision(tmp_path, "approve", who="ana")
    on_disk = json.loads((tmp_path / "review" / "decision.json").read_text())
    assert on_disk == dec and dec["request_id"] == req["id"] and dec["who"] == "ana"
    assert rs.pending_review(tmp_path) is None
    assert rs.read_decision(tmp_path)["action"] == "approve"


def test_feedback_needs_text_and_a_pending_request(tmp_path):
    with pytest.raises(rs.ReviewError, match="not waiting"):
        rs.record_decision(tmp_path, "approve")
    rs.request_review(tmp_path, stage="plan", summary="look")
    with pytest.raises(rs.ReviewError, match="empty"):
        rs.record_decision(tmp_path, "feedback", "   ")
    with pytest.raises(rs.ReviewError, match="unknown"):
        rs.record_decision(tmp_path, "merge")
    rs.record_decision(tmp_path, "feedback", "use 3 epochs", who="bo")
    with pytest.raises(rs.ReviewError, match="already answered"):
        rs.record_decision(tmp_path, "approve")


def test_a_new_request_is_not_answered_by_an_old_decision(tmp_path):
    rs.request_review(tmp_path, stage="plan", summary="first")
    rs.record_decision(tmp_path, "approve", who="ana")
    rs.request_review(tmp_path, stage="code", summary="second")
    assert rs.pending_review(tmp_path)["stage"] == "code"
    assert rs.read_decision(tmp_path) is None


def test_consume_archives_the_pair(tmp_path):
    rs.request_review(tmp_path, stage="plan", summary="first")
    rs.record_decision(tmp_path, "feedback", "smaller lr", who="ana")
    dec = rs.consume_decision(tmp_path)
    assert dec["feedback"] == "smaller lr"
    assert rs.read_request(tmp_path) is None and rs.consume_decision(tmp_path) is None
    hist = json.loads((tmp_path / "review" / "history" / "000.json").read_text())
    assert hist["request"]["summary"] == "first" and hist["decision"]["action"] == "feedback"
