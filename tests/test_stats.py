"""Paired statistics and verdicts (mnistcnn.stats) against hand computation."""
import pytest

from mnistcnn import stats


def test_paired_statistics_against_hand_computation():
    # differences 1, 1, 2, 1: mean 1.25, sd 0.5, se 0.25, t(0.975, 3) = 3.182446
    p = stats.paired([1, 2, 3, 4], [0, 1, 1, 3])
    assert p["mean_diff"] == 1.25 and p["sd_diff"] == pytest.approx(0.5)
    assert p["ci_low"] == pytest.approx(1.25 - 3.182446 * 0.25, abs=1e-6)
    assert p["ci_high"] == pytest.approx(1.25 + 3.182446 * 0.25, abs=1e-6)
    assert p["p_value"] == pytest.approx(0.015392, abs=1e-5)  # t = 5, 3 df, two-sided
    assert stats.verdict(p, scale=1, unit="") .startswith("torch has the higher test accuracy by 1.25")


def test_verdicts_in_plain_words():
    none = stats.paired([0.991, 0.990, 0.992], [0.990, 0.991, 0.992])
    v = stats.verdict(none)
    assert v.startswith("no difference in test accuracy detectable at 95% with 3 seeds")
    assert "smaller than" in v
    assert "one seed only" in stats.verdict(stats.paired([0.99], [0.98]))
    same_gap = stats.paired([0.99, 0.98], [0.98, 0.97])
    assert "n/a (every seed gave the same gap)" in stats.verdict(same_gap)
    d = stats.describe([1.0, 2.0, 3.0])
    assert (d["mean"], d["sd"], d["n"]) == (2.0, 1.0, 3)
