"""The reproduction's progress lines: what the recipes print (agent/recipes/templates), parsed into
events (experiment, step, loss, elapsed), throttled, and the one compact line the CLI prints and the
run page shows for each."""
from __future__ import annotations

import io

from graders.reproduce import ProgressLines, ProgressStream, experiments_of, progress_text

DEMO_SCRIPT = """#!/usr/bin/env bash
# Re-runs every experiment of the plan from scratch, in order.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf results
python train.py --method head --out "results/head"
python train.py --method lora --out "results/lora"
# python train.py --method full --out "results/commented"
python train.py --method full --out results/full
echo "all experiments finished"
"""


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_experiments_come_from_reproduce_sh_in_order():
    assert experiments_of(DEMO_SCRIPT) == ["head", "lora", "full"]
    assert experiments_of("python train.py --method lora\npython train.py --method=full\n") == ["lora", "full"]
    assert experiments_of("bash run.sh\n") == []


def test_recipe_lines_become_events_with_the_experiment_and_the_throttle():
    clock = Clock()
    p = ProgressLines(["head", "lora"], clock=clock, throttle_s=10)
    out = []

    def feed(line, dt=0.0):
        clock.t += dt
        ev = p.feed(line)
        out.append(ev)
        return ev

    assert feed("data: 200 train / 50 test sentences")["kind"] == "info"
    before = feed("accuracy before fine-tuning: 0.5200", 2)
    assert (before["kind"], before["experiment"], before["index"], before["total"]) == ("result", "head", 1, 2)
    first = feed("epoch 0 step 20/60 loss 0.6931", 3)
    assert (first["kind"], first["epoch"], first["step"], first["steps"], first["loss"]) == ("step", 0, 20, 60, 0.6931)
    assert first["elapsed_s"] == 5.0
    assert feed("epoch 0 step 40/60 loss 0.6500", 4) is None  # 4 s after the last shown: throttled
    assert feed("Some warning from a library", 1) is None  # not a progress line
    assert feed("epoch 0 step 60/60 loss 0.6000", 1)["step"] == 60  # an experiment's last step: always
    assert feed("epoch 0 test accuracy 0.7100", 1)["kind"] == "result"
    after = feed("accuracy after fine-tuning (head): 0.7100", 1)
    assert (after["experiment"], after["index"]) == ("head", 1)
    nxt = feed("epoch 0 step 20/60 loss 0.7000", 1)  # the next experiment's first step: shown at once
    assert (nxt["experiment"], nxt["index"], nxt["step"]) == ("lora", 2, 20)
    assert feed("epoch 0 step 40/60 loss 0.6000", 11)["step"] == 40  # past the throttle
    assert feed("Traceback (most recent call last):")["kind"] == "error"
    assert feed('  File "train.py", line 3, in <module>') is None
    assert feed("NameError: name 'tset' is not defined")["kind"] == "error"


def test_the_other_recipes_lines_parse():
    p = ProgressLines(["sft", "dpo", "rlhf"])
    assert p.feed("step 20/60 loss 2.3456")["loss"] == 2.3456  # causal_lm
    assert p.feed("perplexity after fine-tuning (lora): 12.345")["kind"] == "result"
    ev = p.feed("step 10 dpo loss 0.6931 reward margin 0.120")  # dpo: no total
    assert (ev["experiment"], ev["step"], ev["steps"], ev["loss"]) == ("dpo", 10, None, 0.6931)
    assert p.feed("preference accuracy after tuning (dpo): 0.6100")["experiment"] == "dpo"
    ev = p.feed("mean reward after: 0.4100 (before 0.1000); KL to the reference 0.0100 per token")
    assert (ev["kind"], ev["experiment"]) == ("result", "rlhf")
    assert p.feed("reward model: pairwise accuracy 0.8100 on 100 held-out pairs")["kind"] == "result"
    assert ProgressLines().feed("head: accuracy 0.7100 (majority 0.5200)")["kind"] == "result"  # a hand-written script
    throttled = ProgressLines(throttle_s=60)
    throttled.feed("step 1/9 loss 0.7 accuracy 0.5")
    assert throttled.feed("step 2/9 loss 0.6 accuracy 0.6") is None  # a step line with a metric stays a step line
    hf = ProgressLines().feed("{'loss': 0.6931, 'grad_norm': 1.5, 'learning_rate': 2e-05, 'epoch': 0.5}")
    assert (hf["kind"], hf["loss"], hf["epoch"], hf["experiment"], hf["total"]) == ("step", 0.6931, 0.5, None, None)


def test_progress_text_is_one_compact_line():
    step = {"source": "reproduce", "kind": "step", "elapsed_s": 151.2, "experiment": "lora", "index": 2, "total": 3,
            "epoch": 0, "step": 40, "steps": 120, "loss": 0.69314, "text": "epoch 0 step 40/120 loss 0.6931"}
    assert progress_text(step) == "reproduce 2:31 · lora 2/3 · epoch 0 · step 40/120 · loss 0.6931"
    result = {"source": "smoke job", "kind": "result", "elapsed_s": 3725, "experiment": "head", "index": 1, "total": 3,
              "text": "accuracy after fine-tuning (head): 0.7312"}
    assert progress_text(result) == "smoke job 1:02:05 · head 1/3 · accuracy after fine-tuning (head): 0.7312"
    unnamed = {"source": "job train", "kind": "step", "elapsed_s": 9, "experiment": None, "index": 1, "total": None,
               "epoch": 0.5, "step": None, "steps": None, "loss": 0.7}
    assert progress_text(unnamed) == "job train 0:09 · epoch 0.5 · loss 0.7000"
    error = {"source": "reproduce", "kind": "error", "elapsed_s": 61, "experiment": "full", "index": 4, "total": 3,
             "text": "RuntimeError: CUDA out of memory"}
    assert progress_text(error) == "reproduce 1:01 · full · error: RuntimeError: CUDA out of memory"
    closing = {"source": "reproduce", "kind": "info", "elapsed_s": 62, "experiment": None, "index": 4, "total": 3,
               "text": "all experiments finished"}
    assert progress_text(closing) == "reproduce 1:02 · all experiments finished"


def test_stream_parses_chunks_into_events():
    got = []
    s = ProgressStream(ProgressLines(["head"], throttle_s=0), got.append)
    s(1, b"epoch 0 step 1/2 lo")
    assert got == []
    s(1, b"ss 0.5\nepoch 0 step 2/2 loss 0.4\naccuracy after fine-tuning (head): 0.7")
    assert [e["kind"] for e in got] == ["step", "step"]
    s.close()  # the last line had no line end
    assert got[-1]["kind"] == "result" and got[-1]["text"].endswith("0.7")


def test_cli_prints_the_compact_line(monkeypatch):
    from rich.console import Console

    from agent import cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=200, color_system=None))
    cli._progress("progress", source="reproduce", kind="step", elapsed_s=75.0, experiment="head", index=1, total=3,
                  epoch=0, step=20, steps=60, loss=0.6931, text="epoch 0 step 20/60 loss 0.6931")
    cli._progress("progress", source="reproduce", kind="info", elapsed_s=80.0, experiment="head", index=1, total=3,
                  text="data: [bold]200[/bold] train")  # the script's words are not Rich markup
    lines = buf.getvalue().splitlines()
    assert lines[0].endswith("   reproduce 1:15 · head 1/3 · epoch 0 · step 20/60 · loss 0.6931"), lines
    assert lines[1].endswith("reproduce 1:20 · head 1/3 · data: [bold]200[/bold] train"), lines


def test_run_page_describes_progress_events_as_the_cli_does(tmp_path):
    import json

    from agent.web import runs

    ev = {"at": 1.0, "event": "progress", "source": "reproduce", "kind": "step", "elapsed_s": 75.0,
          "experiment": "head", "index": 1, "total": 3, "epoch": 0, "step": 20, "steps": 60, "loss": 0.6931}
    assert runs.describe(ev) == "reproduce 1:15 · head 1/3 · epoch 0 · step 20/60 · loss 0.6931"
    (tmp_path / "events.jsonl").write_text(json.dumps(ev) + "\n" + json.dumps(
        {"at": 2.0, "event": "step", "turn": 3, "detail": "model"}) + "\n")
    live = runs.live(tmp_path)
    assert live["training"] == "reproduce 1:15 · head 1/3 · epoch 0 · step 20/60 · loss 0.6931"
