"""The real embedded model (SmolLM2-135M on llama.cpp, 127.0.0.1): weak, but schema-constrained."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.llm import EmbeddedServer, ModelError, OpenAIChatModel
from tests.conftest import need_import

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)  # module scope: checked before the module's other fixtures
def _llama_cpp():
    """llama-cpp-python (built by scripts/setup.sh) is a requirement: fails under make test, else skips."""
    need_import("llama_cpp", "llama-cpp-python (built by scripts/setup.sh)")


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with EmbeddedServer(log_path=log, n_ctx=4096) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        yield server.client()


def test_schema_constrained_answer_parses_and_obeys_the_schema(model):
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 120},
            "answer": {"type": "string", "enum": ["yes", "no"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["reason", "answer", "confidence"],
        "additionalProperties": False,
    }
    c = model.complete([{"role": "user", "content": "Is Paris in France? Reply in JSON."}], schema=schema,
                       max_tokens=120)
    assert isinstance(c.parsed, dict), c.text
    assert set(c.parsed) == {"reason", "answer", "confidence"}
    assert c.parsed["answer"] in ("yes", "no")
    assert 0 <= c.parsed["confidence"] <= 10
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
    assert c.model  # the served model's name is reported


def test_judge_grades_every_leaf_with_the_embedded_model(model, tmp_path):
    from graders.judge import grade_submission
    from graders.rubric import load_rubric
    from graders.aggregate import aggregate
    import time

    rubric = load_rubric({
        "id": "root", "requirements": "Replicate the paper", "weight": 1, "sub_tasks": [
            {"id": "a", "requirements": "train.py fine-tunes a BERT-style classifier with LoRA", "weight": 1,
             "sub_tasks": [], "task_category": "Code Development", "finegrained_task_category": None},
            {"id": "b", "requirements": "train.py evaluates accuracy on a held-out test set", "weight": 1,
             "sub_tasks": [], "task_category": "Code Development", "finegrained_task_category": None},
        ], "task_category": None, "finegrained_task_category": None,
    })
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "train.py").write_text(
        "from peft import LoraConfig, get_peft_model\n"
        "model = get_peft_model(base, LoraConfig(r=8, target_modules=['query', 'value']))\n"
        "acc = (preds == test_labels).mean()  # held-out test accuracy\n")
    graded = grade_submission(rubric, submission_dir=sub, reproduction_dir=tmp_path / "none",
                              start_time=time.time(), paper_text="We fine-tune MiniLM with LoRA.", model=model)
    agg = aggregate(graded)
    # Schema-constrained decoding leaves the model no way to answer off-format: every leaf must get
    # a valid verdict, and from the model itself (not a deterministic no-code/no-output short cut).
    assert (agg.leaves, agg.invalid_leaves, agg.coverage) == (2, 0, 1.0), [
        (leaf.id, leaf.valid_score, leaf.explanation) for leaf in graded.sub_tasks]
    for leaf in graded.sub_tasks:
        assert leaf.score in (0.0, 1.0) and leaf.explanation.strip()
        assert leaf.judge_metadata["model"] == model.name and not leaf.judge_metadata["cached"]
    assert agg.score == sum(leaf.score for leaf in graded.sub_tasks) / 2
    meta = graded.judge_metadata
    assert meta["calls"] >= 1 and meta["prompt_tokens"] > 0


def test_unreachable_endpoint_is_a_clear_error():
    m = OpenAIChatModel("x", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=2)
    m.retry_deadline_s = 1
    with pytest.raises(ModelError, match="cannot reach the model endpoint"):
        m.complete([{"role": "user", "content": "hi"}])


def test_refused_connection_fails_in_seconds_not_minutes():
    import time as _t
    m = OpenAIChatModel("x", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=2)
    m.connect_deadline_s = 2
    t0 = _t.monotonic()
    with pytest.raises(ModelError, match="cannot reach"):
        m.complete([{"role": "user", "content": "hi"}])
    assert _t.monotonic() - t0 < 30  # the 120 s deadline is for rate limits and 5xx, not refusals


def test_killed_run_leaves_no_model_server(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time as _t

    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from agent.llm import EmbeddedServer\n"
         "s = EmbeddedServer(n_ctx=512).start()\n"
         "print(s.proc.pid, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    server_pid = int(child.stdout.readline())
    os.kill(server_pid, 0)  # running
    child.send_signal(signal.SIGKILL)  # no cleanup code runs in the run's process
    child.wait()
    deadline = _t.monotonic() + 20
    while _t.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        _t.sleep(0.2)
    os.kill(server_pid, signal.SIGKILL)
    pytest.fail("the model server outlived the killed run")
