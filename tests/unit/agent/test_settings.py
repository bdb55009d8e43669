"""Each experiment's learning rate: the paper's for that experiment, a capable model's kept, a
scaffold's tested rate recorded as a deviation where the paper gives it no single one."""
from agent.plan import Experiment
from agent.planning import settings
from papers.paper import Hyperparameter, Paper, Section, Table

DEFAULTS = {"full": 5e-5, "head": 2e-3, "lora": 1e-3}


def _paper(hps=(), tables=(), text="") -> Paper:
    return Paper(source="t.pdf", sha256="0" * 64, title="T", pages=1, sections=[Section(title="Setup", text=text, page=1)],
                 tables=list(tables), hyperparameters=list(hps))


def _choose(paper, exps, said=None, capable=False, model="RoBERTa-base", dataset="SST-2"):
    notes, devs = settings.choose(paper, exps, said or {}, capable=capable, paper_model=model, dataset=dataset,
                                  defaults=DEFAULTS)
    return {e.id: e.settings["learning_rate"] for e in exps}, notes, devs


def test_the_lora_papers_rate_is_its_roberta_base_sst2_cell_and_full_fine_tuning_gets_none_of_loras():
    """The LoRA paper states 38 learning rates (Tables 9-12: RoBERTa base/large, DeBERTa, GPT-2,
    GPT-3, and adapter baselines, per GLUE task). A RoBERTa-base run on SST-2: LoRA's is Table 9's
    RoBERTa base / SST-2 cell; full fine-tuning's is none of them (Table 12's "Fine-Tune" is GPT-3's)."""
    from papers.ingest import load_paper
    from tests.conftest import need_shared

    paper = load_paper(need_shared("papers/real/lora-2106.09685.pdf"))
    exps = [Experiment(id="lora", name="LoRA", recipe="lora"), Experiment(id="full", name="Fine-tuning", recipe="full")]
    rates, notes, devs = _choose(paper, exps)
    assert (rates["lora"].value, rates["lora"].source) == ("0.0005", "the paper's")
    assert "Table 9: RoBERTa base / Learning Rate | SST-2" in rates["lora"].paper[0]
    assert rates["full"].value == "5e-05" and rates["full"].paper == []
    assert rates["full"].source == "the full scaffold's tested rate; the paper states none for it"
    assert devs == [] and notes == []


def test_one_sentence_gives_each_method_its_own_rate():
    text = ("We compare: (a) head only: the encoder is frozen and only the classifier head is trained, learning "
            "rate 0.004; (b) LoRA: rank 8 with the head trainable, learning rate 0.0007; (c) full fine-tuning of "
            "all weights, learning rate 3e-5.")
    sentence = text
    hps = [Hyperparameter(name="learning_rate", value=v, page=1, context=sentence) for v in ("0.004", "0.0007", "3e-5")]
    exps = [Experiment(id=r, name=n, recipe=r) for r, n in (("head", "Head only"), ("lora", "LoRA"),
                                                            ("full", "Full fine-tuning"))]
    rates, _, devs = _choose(_paper(hps, text=text), exps, model="MiniLM", dataset="movies")
    assert {k: s.value for k, s in rates.items()} == {"head": "0.004", "lora": "0.0007", "full": "3e-05"}
    assert devs == []


def test_a_scaffold_the_paper_gives_several_rates_runs_its_own_and_says_so():
    """Two LoRA rates, for two datasets neither of which the run uses: no single one is the run's."""
    table = Table(id="Table 5", page=7, caption="Hyperparameters of LoRA.", header_rows=1,
                  rows=[["", "MNLI", "QQP"], ["Learning Rate", "2E-04", "3E-04"]])
    hps = [Hyperparameter(name="learning_rate", value=v, page=7, context=f"Table 5: Learning Rate | {c} = {v}")
           for v, c in (("2E-04", "MNLI"), ("3E-04", "QQP"))]
    exps = [Experiment(id="lora", name="LoRA", recipe="lora")]
    rates, _, devs = _choose(_paper(hps, [table]), exps)
    assert rates["lora"].value == "0.001" and rates["lora"].source.startswith("the lora scaffold's tested rate")
    (d,) = devs
    assert (d.what, d.paper, d.ours) == ("learning rate of lora", "0.0002 or 0.0003", "0.001")
    assert "no single rate" in d.reason


def test_another_models_rate_is_not_the_runs():
    """A GPT-3 table's LoRA rate is not the rate of a RoBERTa run's LoRA."""
    table = Table(id="Table 12", page=21, caption="The training hyperparameters used for GPT-3 adaptation.",
                  header_rows=1, rows=[["Hyperparameters", "LoRA"], ["Learning Rate", "2.00E-04"]])
    hps = [Hyperparameter(name="learning_rate", value="2.00E-04", page=21,
                          context="Table 12: Learning Rate | LoRA = 2.00E-04")]
    exps = [Experiment(id="lora", name="LoRA", recipe="lora")]
    rates, _, devs = _choose(_paper(hps, [table]), exps)
    assert rates["lora"].paper == [] and rates["lora"].value == "0.001" and devs == []
    rates, _, _ = _choose(_paper(hps, [table]), [Experiment(id="lora", name="LoRA", recipe="lora")], model="GPT-3")
    assert rates["lora"].value == "0.0002"


def test_a_capable_models_rate_is_kept_and_a_weak_models_is_not_used():
    hps = [Hyperparameter(name="learning_rate", value="3e-4", page=2, context="We train LoRA with learning rate 3e-4")]
    said = {"lora": 0.01, "own": 0.002}
    exps = [Experiment(id="lora", name="LoRA", recipe="lora"), Experiment(id="own", name="Prefix tuning")]
    rates, notes, devs = _choose(_paper(hps), exps, said=said, capable=True)
    assert (rates["lora"].value, rates["lora"].source) == ("0.01", "the planning model's")
    assert notes == ["lora: learning rate 0.01 from the model; the paper states 0.0003 for it: the model's is kept"]
    assert [(d.what, d.paper, d.ours, d.reason) for d in devs] == [
        ("learning rate of lora", "0.0003", "0.01", "the planning model's choice")]
    # the paper names no rate for prefix tuning: the model's is the agent's guidance, no deviation (its code sets it)
    assert rates["own"].value == "0.002" and rates["own"].source == "the planning model's (the paper states none for it)"
    weak, notes, devs = _choose(_paper(hps), [Experiment(id="lora", name="LoRA", recipe="lora")], said=said)
    assert weak["lora"].value == "0.0003" and notes == [] and devs == []


def _plan(paper, exps, model="all-MiniLM-L6-v2", dataset="movie review snippets"):
    from agent.plan import Plan

    plan = Plan(task="t", paper_model=model, paper_dataset=dataset, experiments=exps)
    return plan, settings.apply_others(paper, plan, paper_model=model, dataset=dataset)


def test_a_scaffold_runs_the_papers_lora_settings_the_variant_paper_states():
    """The variant paper: LoRA r = 4, alpha = 8, dropout 0.05 — the LoRA scaffold's tested 8, 16 and
    0.1 were what it ran, unrecorded. Now the scaffold's CONFIG holds the paper's values."""
    from pathlib import Path

    from agent.recipes import get_recipe
    from papers.ingest import load_paper

    paper = load_paper(Path(__file__).parents[3] / "papers" / "variant-lora-qv-macro-f1" / "paper.pdf")
    plan, devs = _plan(paper, [Experiment(id="lora", name="LoRA on query and value", recipe="lora")])
    assert devs == []
    assert (plan.hyper.lora_r, plan.hyper.lora_alpha, plan.hyper.lora_dropout) == (4, 8, 0.05)
    config = get_recipe("lora").config(plan)
    assert (config["lora_r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.05)
    got = {k: (s.value, s.source) for k, s in plan.experiments[0].settings.items()}
    assert got["lora_rank"] == ("4", "the paper's") and got["dropout"] == ("0.05", "the paper's")


def test_a_value_the_scaffold_caps_is_a_deviation_and_another_experiments_lora_rank_is_not_full_fine_tunings():
    text = "We fine-tune with LoRA rank r = 16 and a maximum sequence length of 512 tokens."
    hps = [Hyperparameter(name="lora_rank", value="16", page=1, context=text),
           Hyperparameter(name="max_seq_length", value="512", page=1, context=text)]
    exps = [Experiment(id="sft", name="LoRA SFT", recipe="sft"), Experiment(id="full", name="Full fine-tuning",
                                                                             recipe="full")]
    plan, devs = _plan(_paper(hps, text=text), exps, model="SmolLM2", dataset="reviews")
    # the causal-LM scaffold keeps at most 64 tokens: it runs 64, and says so
    assert [(d.what, d.paper, d.ours) for d in devs] == [("max seq length of sft", "512", "64")]
    assert "lora_rank" not in plan.experiment("full").settings
    assert plan.experiment("sft").settings["lora_rank"].value == "16" and plan.hyper.lora_r == 16


def test_the_lora_papers_other_models_settings_are_not_the_runs():
    """Training steps of a GPT-2 analysis and DeBERTa's classifier dropout (Table 10) are no settings of
    a RoBERTa-base LoRA run."""
    from papers.ingest import load_paper
    from tests.conftest import need_shared

    paper = load_paper(need_shared("papers/real/lora-2106.09685.pdf"))
    plan, devs = _plan(paper, [Experiment(id="lora", name="LoRA", recipe="lora")], model="RoBERTa-base",
                       dataset="SST-2")
    got = plan.experiments[0].settings
    assert "training_steps" not in got and "dropout" not in got and "weight_decay" not in got, got
    assert got["lora_rank"].value == "8" and "Table 9" in got["lora_rank"].paper[0]
    assert devs == []
