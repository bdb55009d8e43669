"""Claims across seeds: intervals and verdicts, by hand."""
import pytest

from graders.stats import claim_verdict, mean_ci, paired_verdict, t95


def test_mean_ci_by_hand():
    ci = mean_ci([70.0, 72.0, 74.0])
    assert ci["mean"] == 72.0 and ci["sd"] == pytest.approx(2.0)
    assert ci["half"] == pytest.approx(4.303 * 2.0 / 3 ** 0.5) and t95(2) == 4.303
    assert mean_ci([5.0])["half"] is None


@pytest.mark.parametrize("values,expect", [
    ([70.8, 70.9, 71.0], "replicated"),         # tight and on the paper's value
    ([60.0, 60.2, 59.9], "not replicated"),     # tight and far off
    ([60.0, 82.0, 71.0], "inconclusive"),       # seeds disagree: the interval crosses the tolerance
    ([71.5], "replicated"), ([80.0], "not replicated"),  # one seed: the number alone decides
])
def test_claim_verdicts(values, expect):
    v = claim_verdict(values, 70.9, 3.0)
    assert v["verdict"] == expect, v["why"]


def test_paired_differences_decide_comparative_claims():
    lora, head = [81.0, 82.0, 80.5], [70.0, 71.5, 70.2]
    assert paired_verdict(lora, head)["verdict"] == "replicated"
    assert paired_verdict(head, lora)["verdict"] == "not replicated"
    noisy = paired_verdict([75.0, 60.0, 72.0], [70.0, 70.0, 70.0])
    assert noisy["verdict"] == "inconclusive" and noisy["differences"] == [5.0, -10.0, 2.0]
