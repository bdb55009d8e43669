"""Planning that trusts a capable model and checks it, and plans without junk (issues 21 and 22).

A capable model (one that says ``weak = False``, as every OpenAI-protocol endpoint but the
embedded SmolLM2 does) plans from the whole paper and its plan is kept: grounding validates and
notes, never rewrites a method or a recipe. Rows that are not results (reference-list lines,
equation fragments, parameter counts, timings, settings and statistics tables) are never offered
as experiments or targets; metric names come from the column; the paper's method on a recipe that
is not that method is a deviation; a decoder never stands in for an encoder task's model."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from agent.config import RunConfig
from agent.context import Offline, RunContext
from agent.llm import ScriptedChatModel
from agent.plan import Deviation
from agent.planning import grounding as g
from agent.planning.build import build_plan
from agent.planning.stages import STAGE_FILES, stage_claims, stage_settings
from agent.recipes import registry
from papers import load_paper
from papers.paper import Paper, Section, Table
from papers.results import results_from_tables
from sandbox import assets
from tests.conftest import need_shared

from .conftest import CLAIMS_ANSWER, DEMO_PAPER, SETTINGS_ANSWER

RECIPES = sorted(registry())
REFERENCE_LINE = "Gpu-Lu-Zhong-Xin-Yan-Wang-Li-Zhang"
CITATION_LINE = "Houlsby N., et al. 2019. Parameter-efficient transfer learning. In Proceedings of ICML"


def peft_paper() -> Paper:
    """A parameter-efficient fine-tuning paper whose method (bottleneck adapters) no recipe covers:
    a GLUE table with a '(Frozen)' variant and the before-training row, a BLEU table, a table of
    parameter counts and training time, an ablation row that is an equation fragment, and a
    'table' the text layer found inside the reference list (an author list, a citation)."""
    sections = [
        Section(title="1 Introduction", page=1, text=(
            "We insert small bottleneck adapters into BERT-base and train only them, with the layer norms, "
            "on SST-2 and MRPC from the GLUE benchmark and on the E2E NLG challenge. Adapters stay within "
            "0.4 points of full fine-tuning while training 3% of the parameters.")),
        Section(title="3 Experiments", page=3, text=(
            "We fine-tune BERT-base for 3 epochs with batch size 32 and learning rate 2e-5. A frozen variant "
            "keeps the adapters' down-projection fixed. Table 1 reports accuracy; Table 2 reports BLEU.")),
        Section(title="References", page=8, text=f"{REFERENCE_LINE} 2019. {CITATION_LINE}."),
        Section(title="A Appendix", page=10, text="More results."),
    ]
    tables = [
        Table(id="Table 1", page=3, caption="Table 1: Accuracy (%) on the GLUE dev sets.", header_rows=1, rows=[
            ["Method", "SST-2", "MRPC"],
            ["Before fine-tuning", "50.9", "68.4"],
            ["Full fine-tuning", "93.5", "88.9"],
            ["Adapters (ours)", "93.1", "88.4"],
            ["Adapters (Frozen)", "91.0", "85.2"]]),
        Table(id="Table 2", page=4, caption="Table 2: Results on the E2E NLG challenge.", header_rows=1, rows=[
            ["Method", "BLEU", "ROUGE-L"],
            ["Full fine-tuning", "68.2", "71.0"],
            ["Adapters (ours)", "66.1", "70.3"]]),
        Table(id="Table 3", page=4, caption="Table 3: Trainable parameters and training time per epoch.",
              header_rows=1, rows=[
            ["Method", "# Trainable params", "Train time (s)"],
            ["Full fine-tuning", "110M", "1250"],
            ["Adapters (ours)", "0.9M", "412"]]),
        Table(id="Table 4", page=5, caption="Table 4: Ablation of the losses (GLUE accuracy).", header_rows=1, rows=[
            ["Variant", "GLUE accuracy"],
            ["∅ - Lce + Lcos", "88.1"]]),
        Table(id="Table 5", page=9, caption=None, header_rows=1, rows=[
            ["", "GLUE", "SST-2"],
            [REFERENCE_LINE, "2019", "4171"],
            [CITATION_LINE, "2019", "91"]]),
    ]
    text_tables = results_from_tables(tables)
    return Paper(source="peft.pdf", sha256="0" * 64, title="Bottleneck Adapters for Parameter-Efficient Transfer",
                 abstract="Adapters match full fine-tuning of BERT-base on GLUE with 3% of the parameters.",
                 pages=10, sections=sections, tables=tables, results=text_tables)


def _model(script: list, *, weak: bool | None, context_tokens: int | None = None) -> ScriptedChatModel:
    model = ScriptedChatModel(script, name="scripted-agent")
    if weak is not None:  # an endpoint says whether it is weak (agent.llm); a bare double says nothing
        model.weak = weak
    model.context_tokens = context_tokens
    return model


def _plan(tmp_path, script: list, paper: Paper | Path = DEMO_PAPER, *, weak: bool | None, context_tokens=None, **kw):
    """The plan node's work (agent/nodes/plan.py), stage by stage, with a scripted model."""
    paper = load_paper(paper) if isinstance(paper, Path) else paper
    cfg = RunConfig(run_id="g1", runs_dir=tmp_path / "runs", paper_path=DEMO_PAPER, **kw)
    model = _model(script, weak=weak, context_tokens=context_tokens)
    ctx = RunContext(config=cfg, model=model, judge_model=model, sandbox_factory=None)
    cands = (g.candidates_for(paper, model) if hasattr(g, "candidates_for")  # (the test run before the fix)
             else g.candidate_results(paper))
    s1, usage = stage_claims(ctx, {}, paper, cands, RECIPES, None)
    s2, usage = stage_settings(ctx, usage, paper, cands, s1["experiments"], None)
    plan = build_plan(paper, s1, s2, offline=Offline(), train_limit=cfg.train_limit, epochs=cfg.epochs)
    stages = {n: json.loads((cfg.run_dir / "plan" / f).read_text()) for n, f in STAGE_FILES.items()}
    return plan, stages, model, paper


def _ids(prompt: str) -> dict[str, str]:
    """'R3' by row and column, as the stage-1 prompt lists the candidates."""
    out = {}
    for m in re.finditer(r"^(R\d+): (Table \d+) \(p\. \d+\) \| (.*?) \| (.*?) = ", prompt, re.M):
        out[f"{m.group(2)}|{m.group(3)}|{m.group(4)}"] = m.group(1)
    return out


def _answer(build):
    """A scripted answer computed from the prompt (the candidates' ids are the prompt's)."""
    return lambda messages, schema: build(_ids(messages[1]["content"]))


def test_a_reference_list_line_never_becomes_an_experiment(tmp_path):
    """The junk of issue 22: an experiment named after a line of the reference list, with targets."""
    paper = peft_paper()
    refs = [r for r in paper.results if r.row in (REFERENCE_LINE, CITATION_LINE)]
    assert refs and all(g.not_a_result(paper, r) == "a reference-list line" for r in refs)
    # a reference page's 'table' is no result table, whatever its rows look like
    assert g.table_not_results(paper, "Table 5") == "a table inside the reference list"
    for cands in (g.candidate_results(paper), g.candidate_results(paper, 60, 12)):
        assert not [r for r in cands if r.row in (REFERENCE_LINE, CITATION_LINE)]
    for weak, script in ((None, [{"x": 1}] * 6), (True, [{"x": 1}] * 6)):  # the paper alone decides
        plan, stages, *_ = _plan(tmp_path / f"w{weak}", script, paper, weak=weak)
        used = json.dumps([e.model_dump() for e in plan.experiments] + stages[1]["experiments"])
        assert "Gpu-Lu" not in used and "Houlsby N." not in used, used
        assert any("Adapters" in e.name for e in plan.experiments)


def test_real_papers_offer_no_junk_rows():
    """Rows read from the real papers that are not results: parameter counts and inference time
    (DistilBERT Table 3), equation fragments (DistilBERT Table 4, LoRA Table 7), latency and |Θ|
    (LoRA Table 1), '# Trainable Parameters' columns, statistics and hyper-parameter tables
    (adapters Tables 3-7, InstructGPT's data tables)."""
    cases = {
        "distilbert-1910.01108.pdf": [("Table 3", None), ("Table 4", "∅- Lcos - Lmlm")],
        "lora-2106.09685.pdf": [("Table 1", None), ("Table 7", None), (None, "# Trainable Parameters")],
        "adapters-houlsby-1902.00751.pdf": [("Table 3", None), ("Table 4", None), ("Table 7", None),
                                            (None, "Total num params")],
        "instructgpt-2203.02155.pdf": [(t, None) for t in ("Table 1", "Table 6", "Table 9", "Table 12")],
    }
    for name, junk in cases.items():
        paper = load_paper(need_shared(f"papers/real/{name}"))
        cands = g.candidate_results(paper, 60, 12)
        groups, _ = g.experiments_from_results(paper, cands)
        offered = cands + [t for grp in groups for t in grp["targets"]]
        for table, label in junk:
            bad = [r for r in offered if (table is None or r.table == table)
                   and (label is None or label in (r.row if table else r.column))]
            assert not bad, (name, table, label, bad[:2])
        assert all(g.not_a_result(paper, r) is None for r in cands), name
    # and the real results stay: LoRA's GLUE rows, DistilBERT's GLUE score
    lora = load_paper(need_shared("papers/real/lora-2106.09685.pdf"))
    assert any(r.row == "RoBbase (LoRA)" and r.column == "MNLI" for r in g.candidate_results(lora, 60, 12))
    distil = load_paper(need_shared("papers/real/distilbert-1910.01108.pdf"))
    assert any(r.row == "DistilBERT" and r.table == "Table 1" for r in g.candidate_results(distil))


def test_another_papers_numbers_are_no_experiments_of_this_one():
    """Seen in the sweep: a weak plan of "Attention Is All You Need" had eight experiments, the
    first four prior work's rows of its Table 2 ("ByteNet [18]", "GNMT + RL [38]"), and no
    Transformer row at all; ULMFiT's plan led with "oh-LSTM (Johnson and Zhang, 2016)"."""
    weak = type("Weak", (), {"weak": True, "context_tokens": None, "name": "weak"})()
    for name, own, cited in (("attention-1706.03762.pdf", "Transformer (big)", "ByteNet [18]"),
                             ("ulmfit-1801.06146-acl2018-rgcover.pdf", "ULMFiT (ours)", "Johnson and Zhang")):
        paper = load_paper(need_shared(f"papers/real/{name}"))
        groups, _ = g.experiments_from_results(paper, g.candidates_for(paper, weak))
        names = [grp["name"] for grp in groups]
        assert own in names and not [n for n in names if cited in n or g.CITED.search(n)], (name, names)


def test_a_weak_model_cannot_give_its_experiment_another_papers_number(tmp_path):
    """Seen in the sweep on the how-to-fine-tune-BERT paper: the weak model gave its BERT experiment
    the row "ULMFiT (Howard and Ruder, 2018)" as its target, at stage 1 and again at stage 2."""
    paper = peft_paper()
    paper.tables[0].rows[-1] = ["Adapters (Rebuffi et al., 2017)", "90.2", "84.0"]  # in place of "(Frozen)"
    paper.results = results_from_tables(paper.tables)
    cited = "Table 1|Adapters (Rebuffi et al., 2017)|SST-2"
    claims = _answer(lambda ids: {"experiments": [{"name": "Adapters (ours)", "method": "x", "recipe": "none",
                                                   "claim": "", "results": [ids[cited]]}]})
    settings = _answer(lambda ids: {"task": "classification", "base_model": "BERT-base", "dataset": "SST-2",
                                    "experiments": [{"experiment": "E1", "epochs": 1, "batch_size": 32,
                                                     "learning_rate": 2e-5, "metrics": ["accuracy"],
                                                     "targets": [ids[cited]]}]})
    plan, stages, *_ = _plan(tmp_path, [claims, settings], paper, weak=True)
    assert not [t for e in plan.experiments for t in e.targets if "Rebuffi" in t.row]
    assert "Adapters (ours)" in [e.name for e in plan.experiments]
    for n in (1, 2):
        assert any("another paper's number" in x for x in stages[n]["notes"]), (n, stages[n]["notes"])


def test_a_weak_models_name_with_no_recipe_and_no_result_is_dropped(tmp_path):
    """Seen in the sweep on BERT: 'BERT-LARGE-MIR-MRC' and two more names a weak model made up, each
    with no recipe and no result row, planned as experiments nobody could run or compare."""
    claims = {"experiments": [{"name": "Adapters large variant", "method": "x", "recipe": "none", "claim": "",
                               "results": ["none"]}]}
    plan, stages, *_ = _plan(tmp_path, [claims, {"x": 1}, {"x": 1}, {"x": 1}], peft_paper(), weak=True)
    assert "Adapters large variant" not in [e.name for e in plan.experiments]
    assert all(e.recipe or e.targets for e in plan.experiments) and plan.experiments
    assert any("Adapters large variant" in n and "nothing to run or compare" in n for n in stages[1]["notes"])


def test_a_weak_plan_where_nothing_can_run_keeps_one_experiment_on_a_recipe(tmp_path):
    """Seen in the sweep on the ELECTRA paper: three made-up sizes ("ELECTRA-Large", "Electra-Small",
    "Electra-Base"), none with a recipe or a result: nothing to run, and the loop had no experiment to
    write code for. One stays, on the recipe the paper's text names, recorded as an approximation."""
    paper = peft_paper()
    paper.tables, paper.results = [], []  # no result rows at all: nothing for grounding to add
    claims = {"experiments": [{"name": n, "method": "x", "recipe": "none", "claim": "", "results": ["none"]}
                              for n in ("Adapters large variant", "Adapters small variant")]}
    plan, stages, *_ = _plan(tmp_path, [claims, {"x": 1}, {"x": 1}, {"x": 1}], paper, weak=True)
    assert [(e.name, e.recipe) for e in plan.experiments][:1] == [("Adapters large variant", "full")]
    assert "Adapters small variant" not in [e.name for e in plan.experiments]
    assert any(d.what.startswith("method of") and "approximated by" in d.reason for d in plan.deviations)
    assert any("no experiment had a recipe or a result" in n for n in stages[1]["notes"])


def test_a_row_maps_to_a_recipe_only_when_it_names_its_method():
    """The weak path's regex: a '(Frozen)' variant is not the classifier-head recipe, AdaLoRA and
    LoRA+PE are not LoRA, 'Variable FT' is not full fine-tuning."""
    for row in ("Adapters (Frozen)", "BERT (frozen)", "AdaLoRA", "LoRA+PE / rq = rv = 8", "BERTBASE / Variable FT",
                "Linear attention", "SVM classifier"):
        assert g.recipe_for(row) is None, row
    for row, recipe in (("Classifier head only", "head"), ("head-only", "head"), ("RoBbase (LoRA)", "lora"),
                        ("LoRA (query, value), r = 4", "lora"), ("RoBbase (FT)*", "full"),
                        ("Full fine-tuning", "full"), ("QLoRA (4-bit)", "qlora")):
        assert g.recipe_for(row) == recipe, row


def test_a_weak_models_frozen_row_gets_no_head_recipe(tmp_path):
    plan, *_ = _plan(tmp_path, [{"x": 1}] * 6, peft_paper(), weak=True)
    frozen = next(e for e in plan.experiments if "Frozen" in e.name)
    assert frozen.recipe is None and "Classifier head" not in frozen.method
    assert "Classifier head only" not in json.dumps([e.model_dump() for e in plan.experiments])


def test_a_weak_models_target_that_is_another_experiments_row_is_dropped(tmp_path):
    """Seen in the sweep on the adapters paper: the weak model named one experiment 'Adapter-bert'
    (recipe full) and gave it, at stage 2, the rows of 'Adapters (8-256)' and of a 'No BERT baseline'
    column, both planned experiments of their own: one number stood as the target of two methods."""
    claims = {"experiments": [{"name": "Adapter-bert", "method": "fine_tuning", "recipe": "full", "claim": "",
                               "results": ["none"]}]}
    settings = _answer(lambda ids: {
        "task": "classification", "base_model": "BERT-base", "dataset": "SST-2", "experiments": [
            {"experiment": "E1", "epochs": 1, "batch_size": 32, "learning_rate": 2e-5, "metrics": ["accuracy"],
             "targets": [ids["Table 1|Adapters (Frozen)|SST-2"], ids["Table 2|Full fine-tuning|BLEU"]]}]})
    plan, stages, *_ = _plan(tmp_path, [claims, settings], peft_paper(), weak=True)
    mine = next(e for e in plan.experiments if e.name == "Adapter-bert")
    assert mine.recipe == "full" and ("Table 2", "Full fine-tuning", "BLEU") in {(t.table, t.row, t.column)
                                                                                for t in mine.targets}
    assert not [t for e in plan.experiments if e is not mine for t in e.targets if t in mine.targets]
    assert any("the row of experiment 'Adapters (Frozen)'" in n for n in stages[2]["notes"]), stages[2]["notes"]


def _capable_answers(method_recipe: str = "none"):
    claims = _answer(lambda ids: {"experiments": [
        {"name": "Adapters", "method": "bottleneck adapters after each sublayer, trained with the layer norms",
         "recipe": method_recipe, "claim": "Adapters stay within 0.4 points of full fine-tuning",
         "results": [ids["Table 1|Adapters (ours)|SST-2"], ids["Table 2|Adapters (ours)|BLEU"],
                     ids["Table 1|Full fine-tuning|SST-2"], ids["Table 1|Before fine-tuning|SST-2"]]},
        {"name": "Adapters (Frozen)", "method": "adapters with a fixed down-projection", "recipe": "none",
         "claim": "the frozen variant loses 2 points", "results": [ids["Table 1|Adapters (Frozen)|SST-2"]]},
        {"name": "Full fine-tuning", "method": "every weight of BERT-base fine-tuned", "recipe": "full",
         "claim": "the baseline", "results": [ids["Table 1|Full fine-tuning|SST-2"]]}]})
    settings = {"task": "sentence classification and data-to-text generation", "base_model": "BERT-base",
                "dataset": "SST-2", "experiments": [
                    {"experiment": f"E{k}", "epochs": 3, "batch_size": 32, "learning_rate": 2e-5,
                     "metrics": ["accuracy"], "targets": []} for k in (1, 2, 3)]}
    return [claims, settings]


def test_a_capable_models_plan_survives_grounding_unchanged(tmp_path):
    """Issue 21: the model's `recipe: "none"` became `lora`, the '(Frozen)' row became 'Classifier head
    only (transfer learning)' with recipe head, a baseline's number a target of the paper's method,
    a BLEU value 'accuracy'. Now: the model's experiments, methods and recipes, a note each."""
    plan, stages, model, paper = _plan(tmp_path, _capable_answers(), peft_paper(), weak=False)
    by_name = {e.name: e for e in plan.experiments}
    assert set(by_name) == {"Adapters", "Adapters (Frozen)", "Full fine-tuning"}  # nothing added, nothing renamed
    assert by_name["Adapters"].recipe is None and by_name["Adapters (Frozen)"].recipe is None
    assert by_name["Full fine-tuning"].recipe == "full"
    assert by_name["Adapters"].method == "bottleneck adapters after each sublayer, trained with the layer norms"
    assert by_name["Adapters (Frozen)"].method == "adapters with a fixed down-projection"
    assert "Classifier head" not in json.dumps([e.model_dump() for e in plan.experiments])
    # targets: the experiment's own rows, each with every score it prints, provenance, the column's metric
    adapters = by_name["Adapters"]
    assert [(t.table, t.row, t.column, t.metric) for t in adapters.targets] == [
        ("Table 1", "Adapters (ours)", "SST-2", "accuracy"), ("Table 1", "Adapters (ours)", "MRPC", "accuracy"),
        ("Table 2", "Adapters (ours)", "BLEU", "BLEU"), ("Table 2", "Adapters (ours)", "ROUGE-L", "ROUGE-L")]
    assert adapters.reported_after.row == "Adapters (ours)"
    assert [(t.row, t.column) for t in by_name["Adapters (Frozen)"].targets] == [
        ("Adapters (Frozen)", "SST-2"), ("Adapters (Frozen)", "MRPC")]
    rows = {(r.table, r.row, r.column, r.value, r.page) for r in paper.results}
    assert all((t.table, t.row, t.column, t.value, t.page) in rows for e in plan.experiments for t in e.targets)
    notes = stages[1]["notes"]
    assert any("is the row of experiment 'Full fine-tuning': not a target" in n for n in notes), notes
    assert any("before-training row: kept as the baseline" in n for n in notes), notes
    fields = {f["field"]: f for f in stages[1]["fields"]}
    assert fields["experiment 'Adapters' recipe"] == {"field": "experiment 'Adapters' recipe", "model": "none",
                                                      "kept": None, "by": "kept"}
    # the only value grounding did not keep: the two result ids that are not this experiment's targets
    assert [(f["field"], f["kept"]) for f in stages[1]["fields"] if f["by"] == "replaced"] == [
        ("experiment 'Adapters' results", fields["experiment 'Adapters' results"]["model"][:2])]
    assert stages[1]["capable"] and plan.source == "model"
    assert any("no tested recipe fits" in n for n in plan.notes)
    # the prompt showed each candidate with its metric, and the schema lets the model answer 'none'
    prompt = model.requests[0]["messages"][1]["content"]
    assert "| Adapters (ours) | BLEU = 66.1 (BLEU); ROUGE-L = 70.3 (ROUGE-L)" in prompt and "Gpu-Lu" not in prompt.split("Results from")[1].split("# ")[0]


def test_a_capable_model_that_leaves_rows_out_gets_notes_not_experiments(tmp_path):
    claims = _answer(lambda ids: {"experiments": [
        {"name": "Adapters", "method": "bottleneck adapters", "recipe": "none", "claim": "close to full FT",
         "results": [ids["Table 1|Adapters (ours)|SST-2"]]}]})
    settings = {"task": "classification", "base_model": "BERT-base", "dataset": "SST-2",
                "experiments": [{"experiment": "E1", "epochs": 3, "batch_size": 32, "learning_rate": 2e-5,
                                 "metrics": ["accuracy"], "targets": []}]}
    plan, stages, *_ = _plan(tmp_path, [claims, settings], peft_paper(), weak=False)
    assert [e.name for e in plan.experiments] == ["Adapters"]
    assert any("the paper also reports 'Full fine-tuning'" in n and "not added" in n for n in stages[1]["notes"])
    assert any("'Adapters (Frozen)'" in n for n in stages[1]["notes"])


def test_metric_names_come_from_the_column():
    assert g.metric_name("Win rate vs. SFT (%)", None) == "win rate"
    assert g.metric_name("BLEU / EN-DE", "BLEU") == "BLEU"
    assert g.metric_name("Dev / EM", "EM") == "exact match"
    assert g.metric_name("SQuAD (EM/F1)", "F1") == "exact match"  # the cell's first number is EM
    assert g.metric_name("PPL (dev)", None) == "perplexity"
    assert g.metric_name("MNLI", None) == "score"  # nothing names it: not 'accuracy'
    assert g.metric_name("Accuracy (%)", None) == "accuracy" and g.metric_name("Movie (long) macro-F1", "F1") == "f1"
    lora_caption = ("Table 2: ... We report the overall (matched and mismatched) accuracy for MNLI, Matthew’s "
                    "correlation for CoLA, Pearson correlation for STS-B, and accuracy for other tasks.")
    assert [g.metric_name(c, "accuracy", lora_caption) for c in ("MNLI", "CoLA", "STS-B", "SST-2")] == [
        "accuracy", "MCC", "Pearson", "accuracy"]


def test_metric_names_on_real_papers():
    def metrics(name: str) -> dict[tuple[str, str], str]:
        paper = load_paper(need_shared(f"papers/real/{name}"))
        return {(r.table, r.column): g.reported(r, paper).metric for r in paper.results}

    attention = metrics("attention-1706.03762.pdf")
    assert attention[("Table 2", "BLEU / EN-DE")] == "BLEU" and attention[("Table 3", "PPL (dev)")] == "perplexity"
    lora = metrics("lora-2106.09685.pdf")
    assert lora[("Table 2", "CoLA")] == "MCC" and lora[("Table 2", "STS-B")] == "Pearson"
    assert lora[("Table 2", "SST-2")] == "accuracy" and lora[("Table 3", "E2E NLG Challenge / BLEU")] == "BLEU"
    assert metrics("bert-1810.04805.pdf")[("Table 2", "Dev / EM")] == "exact match"
    assert metrics("adapters-houlsby-1902.00751.pdf")[("Table 1", "MRPC")] == "f1"
    assert metrics("distilbert-1910.01108.pdf")[("Table 1", "Score")] == "score"


def test_the_papers_method_on_another_recipe_is_an_approximation(tmp_path):
    """Issue 22: the paper's own method planned as plain `lora` with no deviation saying so."""
    plan, *_ = _plan(tmp_path, _capable_answers(method_recipe="lora"), peft_paper(), weak=False)
    adapters = next(e for e in plan.experiments if e.name == "Adapters")
    assert adapters.recipe == "lora"  # the model's choice, kept
    approx = [d for d in plan.deviations if d.what == f"method of {adapters.id}"]
    assert len(approx) == 1 and approx[0].reason == "approximated by LoRA: no recipe implements Adapters"
    assert plan.deviations[0] == approx[0]  # first: the experiment statuses cite the first deviations
    assert not [d for d in plan.deviations if d.what.startswith("method of") and d is not approx[0]]  # full is full


def test_a_decoder_never_stands_in_for_an_encoder_tasks_model(tmp_path):
    """Issue 22's 'paper GPT-2 → ours SmolLM2 … the classification scaffolds need an encoder' on an
    encoder task: the stand-in is the encoder, and a deviation that says otherwise is caught."""
    settings = dict(SETTINGS_ANSWER, base_model="GPT-2")
    demo = load_paper(DEMO_PAPER)
    demo.sections[0].text += " Unlike GPT-2, the encoder is small."
    plan, *_ = _plan(tmp_path, [CLAIMS_ANSWER, settings], demo, weak=False)
    assert plan.paper_model == "GPT-2" and {e.recipe for e in plan.experiments} <= {"head", "lora", "full"}
    base = [d for d in plan.deviations if d.what == "base model"]
    assert [(d.paper, d.ours) for d in base] == [("GPT-2", assets.MODEL_NAME)], plan.deviations
    assert "decoder-only" in base[0].reason and plan.model == assets.MODEL_NAME
    assert not [d for d in plan.deviations if "smollm" in d.ours.lower()]
    # the check itself: a decoder stand-in on an encoder task is replaced, on a decoder task kept
    from agent.planning.build import check_deviations

    bad = Deviation(what="base model", paper="GPT-2", ours=assets.GGUF_NAME,
                    reason="a decoder-only model: the classification scaffolds need an encoder")
    fixed, notes = check_deviations([bad], decoder_task=False)
    assert fixed[0].ours == assets.MODEL_NAME and "on an encoder task" in notes[0]
    assert check_deviations([bad], decoder_task=True) == ([bad], [])
    same = Deviation(what="dataset", paper="SST-2", ours="sst2", reason="x")
    assert check_deviations([same, bad, bad], decoder_task=True)[0] == [bad]


def test_a_decoder_paper_on_the_weak_path_gets_an_encoder_stand_in(tmp_path):
    """The LoRA paper with an unusable model: its most-named model is GPT-3, its planned recipes
    LoRA and full fine-tuning of the classification scaffolds: the stand-in is MiniLM, not SmolLM2."""
    pdf = need_shared("papers/real/lora-2106.09685.pdf")
    plan, *_ = _plan(tmp_path, [{"x": 1}] * 6, pdf, weak=True)
    assert any(e.recipe in ("lora", "full") for e in plan.experiments)
    base = [d for d in plan.deviations if d.what == "base model"]
    assert base and all(d.ours == assets.MODEL_NAME for d in base), plan.deviations


def test_a_capable_model_plans_from_the_whole_paper(tmp_path):
    """Issue 21: the model saw only the first ~6,900 characters of the paper, whatever its context."""
    pdf = need_shared("papers/real/lora-2106.09685.pdf")
    paper = load_paper(pdf)
    late = next(s for s in paper.sections if s.title.startswith("H.4"))

    def claims(ids):
        rid = next(v for k, v in ids.items() if k.startswith("Table 2|RoBbase (LoRA)|"))
        return {"experiments": [{"name": "LoRA on RoBERTa-base", "method": "rank-8 LoRA on Wq and Wv of RoBERTa-base",
                                 "recipe": "lora", "claim": "LoRA matches fine-tuning on GLUE", "results": [rid]}]}

    settings = {"task": "GLUE classification", "base_model": "RoBERTa-base", "dataset": "MNLI",
                "experiments": [{"experiment": "E1", "epochs": 30, "batch_size": 16, "learning_rate": 4e-4,
                                 "metrics": ["accuracy"], "targets": []}]}
    plan, stages, model, _ = _plan(tmp_path / "big", [_answer(claims), settings], paper, weak=False)
    prompt = model.requests[0]["messages"][1]["content"]
    assert late.text[-200:] in prompt and "Table 18" in prompt  # the last section, the last table
    assert len(prompt) > 60_000 and model.requests[0]["schema"]["properties"]["experiments"]["maxItems"] == 8
    assert [(e.name, e.recipe) for e in plan.experiments] == [("LoRA on RoBERTa-base", "lora")]
    # an 8k-token endpoint: every section by its heading, long ones shortened, within its window
    _, stages8, model8, _ = _plan(tmp_path / "8k", [_answer(claims), settings], paper, weak=False, context_tokens=8192)
    prompt8 = model8.requests[0]["messages"][1]["content"]
    # at 3 characters a token (a conservative count), prompt and reply fit the 8,192 tokens
    assert len(model8.requests[0]["messages"][0]["content"] + prompt8) / 3 + 3000 <= 8192
    body = [s for s in paper.sections if s.title != "REFERENCES"]
    assert all(s.title in prompt8 for s in body) and "[… section shortened]" in prompt8
    assert any("longer than the model's context allows" in n for n in stages8[1]["notes"])
    # a weak model keeps its small excerpt (the embedded model's 8k context)
    _, _, weak, _ = _plan(tmp_path / "weak", [{"x": 1}] * 6, paper, weak=True)
    assert len(weak.requests[0]["messages"][1]["content"]) < 7_000


def test_a_weak_models_plan_still_gets_its_recipes(tmp_path):
    """The embedded model (weak = True) on the demo paper: its answer is completed and mapped."""
    plan, stages, *_ = _plan(tmp_path, [CLAIMS_ANSWER, SETTINGS_ANSWER], weak=True)
    assert [(e.id, e.recipe) for e in plan.experiments] == [("head", "head"), ("lora", "lora"), ("full", "full")]
    assert any("added 'Full fine-tuning'" in n for n in stages[1]["notes"]) and not stages[1]["capable"]
    assert not [d for d in plan.deviations if d.what.startswith("method of")]


def test_a_table_with_datasets_as_rows_gives_each_method_its_experiment(tmp_path):
    """The adapters paper's Table 2 has tasks as rows and methods as columns: every method column is
    an experiment (they were all 'covered' by the first column's, as they share its rows)."""
    pdf = need_shared("papers/real/adapters-houlsby-1902.00751.pdf")
    plan, *_ = _plan(tmp_path, [{"x": 1}] * 6, pdf, weak=True)
    names = [e.name for e in plan.experiments]
    assert {"BERTBASE / Fine-tune", "BERTBASE / Adapters", "No BERT baseline"} <= set(names), names
    adapters = next(e for e in plan.experiments if e.name == "BERTBASE / Adapters")
    assert {t.column for t in adapters.targets} == {"BERTBASE / Adapters"} and adapters.recipe is None


def test_a_capable_models_claims_are_kept_with_their_kinds_and_checked(tmp_path):
    """Issue 21: the paper's claims are first-class — each with its kind, the experiments it compares
    and its result cells; a claim naming an unplanned experiment, a comparison without two
    experiments, an absolute claim without a cell are left out with a note."""
    base = _capable_answers()[0]

    def with_claims(messages, schema):
        ids = _ids(messages[1]["content"])
        answer = base(messages, schema)
        answer["claims"] = [
            {"text": "Adapters stay within 0.5 points of full fine-tuning on SST-2 (93.1 vs 93.5) and on MRPC",
             "kind": "comparative",
             "experiments": ["Adapters", "Full fine-tuning"], "relation": "within", "margin": 0.5,
             "results": [ids["Table 1|Adapters (ours)|SST-2"], ids["Table 1|Full fine-tuning|SST-2"]]},
            {"text": "Freezing the down-projection costs accuracy", "kind": "trend",
             "experiments": ["Adapters", "Adapters (Frozen)"], "relation": "decreasing", "margin": 0,
             "results": [ids["Table 1|Adapters (Frozen)|SST-2"]]},
            {"text": "Adapters reach 93.1 on SST-2", "kind": "absolute", "experiments": ["Adapters"],
             "relation": "none", "margin": 0, "results": [ids["Table 1|Adapters (ours)|SST-2"]]},
            {"text": "Adapters beat prefix tuning", "kind": "comparative", "experiments": ["Adapters", "Prefix"],
             "relation": "greater", "margin": 0, "results": ["none"]},
            {"text": "Adapters are good", "kind": "comparative", "experiments": ["Adapters"],
             "relation": "greater", "margin": 0, "results": ["none"]},
            {"text": "Adapters are cheap", "kind": "absolute", "experiments": ["Adapters"],
             "relation": "none", "margin": 0, "results": ["none"]}]
        return answer

    settings = _capable_answers()[1]
    settings["experiments"][2]["epochs"] = 0  # a model only evaluated: the schema lets a capable model say so
    plan, stages, model, _ = _plan(tmp_path, [with_claims, settings], peft_paper(), weak=False)
    assert "claims" in model.requests[0]["schema"]["properties"]
    assert model.requests[1]["schema"]["properties"]["experiments"]["items"]["properties"]["epochs"]["minimum"] == 0
    assert any("only evaluated, never trained" in n for n in stages[2]["notes"]), stages[2]["notes"]
    ids = {e.name: e.id for e in plan.experiments}
    got = [(c.id, c.kind, c.experiments, c.relation, c.margin, c.source) for c in plan.claims]
    assert got == [("C1", "comparative", [ids["Adapters"], ids["Full fine-tuning"]], "within", 0.5, "model"),
                   ("C2", "trend", [ids["Adapters"], ids["Adapters (Frozen)"]], "decreasing", 0.0, "model"),
                   ("C3", "absolute", [ids["Adapters"]], None, 0.0, "model")]
    # a row the claim cites brings the scores its sentence names (by number or column): it is tested on
    # each of them — both test sets here, SST-2 alone for "93.1 on SST-2", not the row's every column
    assert [(t.row, t.column) for t in plan.claims[0].cells] == [
        ("Adapters (ours)", "SST-2"), ("Adapters (ours)", "MRPC"), ("Full fine-tuning", "SST-2"),
        ("Full fine-tuning", "MRPC")]
    assert [(t.row, t.column) for t in plan.claims[2].cells] == [("Adapters (ours)", "SST-2")]
    notes = stages[1]["notes"]
    assert any("'Adapters beat prefix tuning'" in n and "not planned (Prefix)" in n for n in notes), notes
    assert any("'Adapters are good'" in n and "two experiments" in n for n in notes), notes
    assert any("'Adapters are cheap'" in n and "without a result row" in n for n in notes), notes


def test_a_weak_models_plan_gets_claims_from_the_papers_numbers(tmp_path):
    plan, _, model, _ = _plan(tmp_path, [_answer(lambda ids: {"experiments": [
        {"name": "LoRA", "method": "lora", "recipe": "lora", "claim": "LoRA works", "results": ["none"]}]}),
        {"task": "classification", "base_model": "x", "dataset": "y", "experiments": [
            {"experiment": "E1", "epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "metrics": ["accuracy"],
             "targets": []}]}], weak=True)
    assert "claims" not in model.requests[0]["schema"]["properties"]  # the weak model's grammar is unchanged
    assert plan.claims and all(c.source == "paper" for c in plan.claims)
    assert {c.kind for c in plan.claims} <= {"absolute", "comparative"}


def test_a_capable_models_order_and_its_pick_from_the_papers_grid_are_kept(tmp_path):
    """Seen on the adapters paper: the model listed the paper's method first and the plan put the
    recipe-backed baseline first; its learning rates, one from the paper's own search grid
    ("3 · 10-5, 3 · 10-4, 3 · 10-3"), were each noted as a disagreement with the paper."""
    from papers.paper import Hyperparameter

    paper = peft_paper()
    paper.hyperparameters = [Hyperparameter(name="learning_rate", value="3 · 10-5, 3 · 10-4, 3 · 10-3", page=4,
                                            context="we sweep the learning rate over 3 · 10-5, 3 · 10-4, 3 · 10-3")]
    claims, settings = _capable_answers()
    settings["experiments"][0]["learning_rate"] = 3e-4  # in the grid
    settings["experiments"][1]["learning_rate"] = 3e-5  # in it too
    settings["experiments"][2]["learning_rate"] = 1e-2  # not in it
    plan, stages, *_ = _plan(tmp_path, [claims, settings], paper, weak=False)
    assert [e.name for e in plan.experiments] == ["Adapters", "Adapters (Frozen)", "Full fine-tuning"]
    lr_notes = [n for n in plan.notes if "learning rate" in n]
    assert len(lr_notes) == 1 and lr_notes[0].startswith("full: learning rate 0.01 from the model"), lr_notes
    rates = {e.id: e.settings["learning_rate"] for e in plan.experiments}
    assert [rates[i].value for i in ("adapters", "adapters-frozen", "full")] == ["0.0003", "3e-05", "0.01"]
    # kept, and the full scaffold runs it: a deviation from the paper's grid, the model's choice
    assert plan.hyper.learning_rate["full"] == 0.01
    d = next(d for d in plan.deviations if d.what == "learning rate of full")
    assert d.ours == "0.01" and d.reason == "the planning model's choice" and "0.0003" in d.paper


def test_the_recorded_capable_plan_of_the_lora_paper_replays_through_the_openai_client(tmp_path):
    """The planning turns of a capable model recorded on the LoRA paper (tests/fixtures/trajectories),
    served again on loopback to the real OpenAI-protocol client: the model's experiments, recipes
    and order are kept, and each claim holds the cells its sentence names — SST-2 and MNLI for "on
    par (SST-2 95.1 vs 94.8, MNLI 87.5 vs 87.6)", SST-2 alone for "95.1 on SST-2" — not Table 2's
    nine columns."""
    plan, s1, _ = _replayed_plan(tmp_path, "lora-2106.09685.pdf", "lora-2106.09685.json")
    assert s1["capable"] and plan.source == "model"
    assert [(e.id, e.recipe) for e in plan.experiments] == [("lora", "lora"), ("full", "full")]
    c1, c2 = plan.claims
    assert (c1.kind, c1.relation, c1.margin, c1.experiments) == ("comparative", "within", 1.0, ["lora", "full"])
    assert [(t.row, t.column) for t in c1.cells] == [("RoBbase (LoRA)", "MNLI"), ("RoBbase (LoRA)", "SST-2"),
                                                     ("RoBbase (FT)*", "MNLI"), ("RoBbase (FT)*", "SST-2")]
    assert c2.kind == "absolute" and [(t.row, t.column) for t in c2.cells] == [("RoBbase (LoRA)", "SST-2")]
    # the model read Table 9 (RoBERTa base, SST-2: batch 16, 60 epochs), not the paper's first batch
    # size (128) and epochs (5): its values are the paper's and run; the user's --epochs 1 is the one deviation
    assert (plan.hyper.batch_size, plan.hyper.epochs) == (16, 1)
    assert [(d.paper, d.ours) for d in plan.deviations if d.what in ("epochs", "batch size")] == [("60", "1")]


def test_the_recorded_capable_plan_of_the_adapters_paper_keeps_its_method_first_and_unscaffolded(tmp_path):
    """The adapters paper's recorded planning turns, replayed to the real client: the paper's method
    (bottleneck adapters, recipe "none") first as the model listed it, full fine-tuning on its recipe,
    the comparison on the SST column the sentence quotes (94.2 vs 94.9)."""
    plan, _, s2 = _replayed_plan(tmp_path, "adapters-houlsby-1902.00751.pdf", "adapters-houlsby-1902.00751.json")
    assert [(e.id, e.recipe) for e in plan.experiments] == [("adapters-64", None), ("full", "full")]
    c1, c2 = plan.claims
    assert (c1.relation, c1.experiments) == ("within", ["adapters-64", "full"])
    assert [t.column for t in c1.cells] == ["SST", "SST"] and [t.column for t in c2.cells] == ["SST"]
    assert not any("the paper's value is used" in n and "E2" in n for n in s2["notes"])  # 3e-5: in the grid
    # the model's "SST-2" is the paper's "SST" kept, not replaced by a guess
    assert (plan.paper_dataset, s2["shared"]["dataset"]["from"]) == ("SST-2", "model (the paper writes 'SST')")


def _replayed_plan(tmp_path, pdf: str, trajectory: str):
    """A recorded capable model's two planning turns, served on loopback to the real OpenAI client."""
    from agent.llm import OpenAIChatModel
    from tests.trajectories import Replay

    paper = load_paper(need_shared(f"papers/real/{pdf}"))
    with Replay(Path(__file__).resolve().parents[2] / "fixtures" / "trajectories" / trajectory) as replay:
        model = OpenAIChatModel("any", base_url=replay.url, api_key="unused-local")
        cfg = RunConfig(run_id="replay", runs_dir=tmp_path / "runs", paper_path=DEMO_PAPER)
        ctx = RunContext(config=cfg, model=model, judge_model=model, sandbox_factory=None)
        cands = g.candidates_for(paper, model)
        s1, usage = stage_claims(ctx, {}, paper, cands, RECIPES, None)
        s2, usage = stage_settings(ctx, usage, paper, cands, s1["experiments"], None)
        plan = build_plan(paper, s1, s2, offline=Offline(), train_limit=200, epochs=1)
    assert replay.errors == [] and replay.served == 2  # the two planning turns, as recorded
    return plan, s1, s2


def test_a_model_name_with_a_variant_suffix_is_the_papers_name_kept():
    """DistilBERT's paper writes "BERT-base"; a capable model's "BERT-base-uncased" was replaced by the
    most-mentioned name ("DistilBERT"), the student, not the model the baseline fine-tunes."""
    text = "we fine-tune BERT-base on SST and compare with GPT-3 and BERT v1"
    assert g.written_as("BERT-base-uncased", text) == "BERT-base"
    assert g.written_as("SST-2", text) == "SST"
    assert g.written_as("BERT v2", text) == "BERT"
    assert g.written_as("GPT-2", text) is None  # "GPT" is written only as GPT-3
    assert g.written_as("RoBERTa-large", text) is None


def test_a_capable_models_batch_size_and_epochs_are_kept_with_the_papers_as_a_deviation(tmp_path):
    """The demo paper states batch size 32 and 1 epoch. A capable model that plans 3 epochs of batch 8
    keeps its choice (the paper's first statement can be another run's: DistilBERT's only batch size
    was its inference timing's); each disagreement is a note and a deviation. A weak model's answer
    is still overruled by the paper's."""
    settings = {"task": "sentiment classification", "base_model": "MiniLM", "dataset": "movie reviews",
                "experiments": [dict(e, epochs=3, batch_size=8) for e in SETTINGS_ANSWER["experiments"]]}
    plan, stages, *_ = _plan(tmp_path / "capable", [CLAIMS_ANSWER, settings], weak=False)
    assert (plan.hyper.epochs, plan.hyper.batch_size) == (3, 8)
    devs = {d.what: (d.paper, d.ours, d.reason) for d in plan.deviations}
    assert devs["batch size"] == ("32", "8", "the planning model's choice: the paper states it nowhere")
    assert devs["epochs"] == ("1", "3", "the planning model's choice: the paper states it nowhere")
    assert any("batch_size 8 from the model; the paper states 32" in n and "kept" in n
               for n in stages[2]["notes"]), stages[2]["notes"]
    weak, *_ = _plan(tmp_path / "weak", [CLAIMS_ANSWER, settings], weak=True)
    assert (weak.hyper.epochs, weak.hyper.batch_size) == (1, 32)


def test_the_task_lists_every_target_a_claim_cites_with_its_plan_index():
    """DistilBERT's plan had 11 targets per experiment; the task listed T1-T8 and so left out the
    IMDb cell (the 10th), the one its claims C1 and C3 are about, and the agent could not map to it."""
    from agent.loop.context import task_message
    from agent.plan import Claim, Experiment, Plan, Reported

    cols = ["Score", "CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "IMDb (acc.)", "SQuAD"]
    cells = [Reported(value=90.0 + k, text=f"{90 + k}", table="Table 2" if c.startswith(("IMDb", "SQuAD")) else "Table 1",
                      row="DistilBERT", column=c, page=3) for k, c in enumerate(cols)]
    imdb = cells[9]
    plan = Plan(task="classification", paper_model="BERT-base", paper_dataset="IMDb",
                experiments=[Experiment(id="distilbert", name="DistilBERT", targets=cells)],
                claims=[Claim(id="C1", text="DistilBERT reaches 99 on IMDb.", kind="absolute",
                              experiments=["distilbert"], cells=[imdb])])
    text = task_message(plan, SimpleNamespace(title="DistilBERT", abstract=""), "60 turns", brief=False)["content"]
    assert 'T10: paper accuracy 99 (Table 2, row "DistilBERT", column "IMDb (acc.)", p. 3)' in text, text
    assert "T8:" in text and "T9:" not in text and "T11:" not in text
    assert "(2 more targets of this experiment, not listed)" in text


def test_a_column_of_differences_between_runs_is_no_before_training_number():
    """DistilBERT's ablation row "Triple loss + random weights initialization" (-3.69 in "Variation on
    GLUE macro-score") became every experiment's before-training target (B1), because it says 'random'."""
    paper = load_paper(need_shared("papers/real/distilbert-1910.01108.pdf"))
    row = next(r for r in paper.results if r.table == "Table 4" and "random" in r.row)
    assert g.not_a_result(paper, row) == "a difference between runs, not a run's number"
    assert g.find_reported(paper, "before") is None
    assert not [r for r in g.candidate_results(paper) if r.table == "Table 4"]


def test_the_distilbert_plan_a_capable_model_gave_keeps_its_settings_and_names(tmp_path):
    """The relayed DistilBERT run's answers: the model's batch size 32 (the paper states only its
    inference timing's 1), its "BERT-base-uncased" (the paper writes BERT-base), no ablation row as
    a before-training target, and the epochs the paper never states shown as the model's."""
    def claims(ids):
        distil, bert = ids["Table 1|DistilBERT|Score"], ids["Table 1|BERT-base|Score"]
        return {"experiments": [
            {"name": "DistilBERT", "method": "a 6-layer student distilled from BERT-base", "recipe": "none",
             "claim": "DistilBERT retains 97% of BERT's performance", "results": [distil]},
            {"name": "BERT-base", "method": "BERT-base fine-tuned", "recipe": "full", "claim": "79.5", "results": [bert]}],
            "claims": []}

    settings = {"task": "sentiment classification", "base_model": "BERT-base-uncased", "dataset": "IMDb",
                "experiments": [{"experiment": e, "epochs": 3, "batch_size": 32, "learning_rate": 5e-5,
                                 "metrics": ["accuracy"], "targets": []} for e in ("E1", "E2")]}
    paper = load_paper(need_shared("papers/real/distilbert-1910.01108.pdf"))
    plan, stages, *_ = _plan(tmp_path, [_answer(claims), settings], paper, weak=False, epochs=1)
    assert plan.hyper.batch_size == 32 and not [d for d in plan.deviations if d.what == "batch size"]
    assert plan.paper_model == "BERT-base-uncased"
    assert any("the paper writes 'BERT-base'; the model's name is kept" in n for n in stages[2]["notes"])
    assert all(not e.before_targets and e.reported_before is None for e in plan.experiments)
    assert [(d.paper, d.ours) for d in plan.deviations if d.what == "epochs"] == [
        ("unspecified (the planning model's 3)", "1")]
