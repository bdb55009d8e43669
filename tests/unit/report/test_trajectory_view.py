"""agent.web.code's trajectory: turns joined with their results, step manifests diffed through
the blobs, and what it does with steps no tool call explains or files it cannot read."""
import json

from agent.web import code
from graders.files import write_json


def test_steps_and_their_diffs(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    steps = code.load_steps(d)
    assert [n for n, _ in steps] == [1, 2, 3, 4]
    diffs = {s["step"]: s for s in code.step_diffs(d)}
    assert diffs[1]["prev"] is None and [f["name"] for f in diffs[1]["files"]] == ["train.py"]
    assert diffs[2]["files"] == [] and diffs[4]["files"] == []
    by_name = {f["name"]: f for f in diffs[3]["files"]}
    assert diffs[3]["prev"] == 2
    assert (by_name["reproduce.sh"]["status"], by_name["train.py"]["status"]) == ("added", "changed")
    assert ("add", "+    acc = 0.8") in by_name["train.py"]["rows"]
    assert ("del", '-    print("accuracy", acc)  # bug: acc undefined') in by_name["train.py"]["rows"]
    assert by_name["train.py"]["rows"][:2] == [("ctx", "--- a/train.py"), ("ctx", "+++ b/train.py")]


def test_a_sync_no_call_explains_is_labelled_and_a_step_without_a_turn_is_kept(tmp_path, fx):
    d = fx.finished_run(tmp_path)
    files = json.loads((d / "steps" / "0004.json").read_text())["files"]
    # a reviewer's edit synced at the last turn (agent/nodes/review.py writes steps/<loop.turn>.json)
    edited = fx.REPRODUCE_SH + "# reviewed\n"
    (d / "blobs" / fx.sha(edited)[:2]).mkdir(exist_ok=True)
    (d / "blobs" / fx.sha(edited)[:2] / fx.sha(edited)).write_text(edited)
    write_json(d / "steps" / "0004.json", {"step": 4, "files": {**files, "reproduce.sh": fx.sha(edited)}})
    # and a later step with no turn file, whose new file's blob is missing
    write_json(d / "steps" / "0006.json", {"step": 6, "files": {**files, "reproduce.sh": fx.sha(edited),
                                                           "notes.md": "0" * 64}})
    view = code.trajectory_view(d)
    turn4 = next(t for t in view["turns"] if t["turn"] == 4)
    (f,) = turn4["step"]["files"]
    assert f["name"] == "reproduce.sh" and not f["by_call"] and ("add", "+# reviewed") in f["rows"]
    turn3 = next(t for t in view["turns"] if t["turn"] == 3)
    assert all(f["by_call"] for f in turn3["step"]["files"])
    last = view["turns"][-1]
    assert last.get("step_only") and last["turn"] == 6 and last["step"]["prev"] == 4
    (f,) = last["step"]["files"]
    assert f["name"] == "notes.md" and f["status"] == "added" and f["unreadable"] and f["rows"] == []


def test_blob_text_reads_only_hashes(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    assert code.blob_text(tmp_path, "../run.json") is None
    assert code.blob_text(tmp_path, "../../" + "a" * 58) is None
    sha = "ab" * 32
    (tmp_path / "blobs" / "ab").mkdir(parents=True)
    (tmp_path / "blobs" / "ab" / sha).write_bytes(b"\xff\xfe binary")
    assert code.blob_text(tmp_path, sha) is None  # not text
    (tmp_path / "blobs" / "ab" / sha).write_text("x = 1\n")
    assert code.blob_text(tmp_path, sha) == "x = 1\n"


def test_big_diffs_are_cut_and_outputs_folded():
    rows, cut = code.diff_rows("", "\n".join(str(i) for i in range(code.MAX_DIFF_LINES + 50)), "a", "b")
    assert cut and len(rows) == code.MAX_DIFF_LINES
    rows, cut = code.diff_rows("a\n", "b\n", "a/x", "b/x")
    assert not cut and rows[-2:] == [("del", "-a"), ("add", "+b")]
    long = code._fold("\n".join(["line"] * (code.FOLD_LINES + 1)))
    assert long["long"] and long["preview"].count("\n") == code.PREVIEW_LINES - 1
    assert not code._fold("short")["long"]
    assert code._arguments({"timeout": 120, "command": "ls"}) == [
        ("timeout", code._fold("120")), ("command", code._fold("ls"))]


def test_a_turn_whose_calls_have_not_run_yet(tmp_path, fx):
    from fastapi.testclient import TestClient

    from agent.loop import trajectory
    from agent.web.app import create_app

    d = fx.bare_run(tmp_path, "r1").run_dir
    trajectory.save_turn(d, {"turn": 1, "notes": [], "menu": ["bash"], "guide": None,
                             "reply": {"text": "", "calls": [{"id": "c1", "name": "bash",
                                                              "arguments": {"command": "ls"}, "error": None}]},
                             "results": []})
    trajectory.save_turn(d, {"turn": 2, "notes": [], "menu": ["bash"], "guide": None,
                             "reply": {"text": "{oops", "calls": []}, "reask": "it was cut off (too long).",
                             "results": []})
    view = code.trajectory_view(d, checkpointed_turn=1)
    t1, t2 = view["turns"]
    assert t1["calls"][0]["result"] is None and t1["calls"][0]["output"] is None and not t1["uncheckpointed"]
    assert t2["calls"] == [] and t2["reask"].startswith("it was cut off") and t2["uncheckpointed"]
    html = TestClient(create_app(tmp_path), base_url="http://127.0.0.1").get("/runs/r1/trajectory").text
    assert 'class="call pending" id="call-1-1"' in html and "not run yet" in html
    assert "No usable tool call: it was cut off (too long)." in html and "{oops" in html
