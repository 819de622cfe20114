"""Statistics over seeds: per-backend summaries and paired backend differences.

The same seed gives every backend the same initial weights and batches (harmonized),
so their results are paired: the per-seed difference cancels the seed's own luck.
"""
from __future__ import annotations

import math

import numpy as np


def describe(values) -> dict:
    """n, mean, sample standard deviation (ddof=1; None for one value), min, max."""
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "min": float(v.min()), "max": float(v.max())}


def paired(a, b, confidence: float = 0.95) -> dict:
    """Mean of a - b with a Student-t confidence interval and the paired t-test p-value."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    out = {"n": int(d.size), "mean_diff": float(d.mean()), "confidence": confidence,
           "sd_diff": None, "ci_low": None, "ci_high": None, "p_value": None}
    if d.size < 2:
        return out
    sd = float(d.std(ddof=1))
    out.update(sd_diff=sd, ci_low=float(d.mean()), ci_high=float(d.mean()))  # every seed the same gap
    if sd > 0:  # scipy's paired t-test and its interval
        test = stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        ci = test.confidence_interval(confidence)
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(test.pvalue))
    return out


def ci_half_width(p: dict) -> float:
    """The half-width of ``paired``'s confidence interval of accuracies, in points."""
    return (p["ci_high"] - p["ci_low"]) / 2 * 100


def prediction_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Where one more run's value falls with probability ``confidence``, from the runs so
    far (Student t): mean ± t(n-1) · sd · sqrt(1 + 1/n). Needs two values or more."""
    v = np.asarray(values, dtype=float)
    half = prediction_half_width(float(v.std(ddof=1)), v.size, confidence)
    return float(v.mean()) - half, float(v.mean()) + half


def prediction_half_width(sd: float, n: int, confidence: float = 0.95) -> float:
    """The half-width of prediction_interval, from the runs' sd and number (n >= 2)."""
    from scipy import stats

    return float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)


def verdict(p: dict, a: str = "torch", b: str = "keras", what: str = "test accuracy",
            scale: float = 100.0, unit: str = "pp") -> str:
    """A plain-words reading of ``paired``'s result (values scaled, e.g. to points)."""
    conf = round(p["confidence"] * 100)
    if p["n"] < 2:
        return (f"one seed only: {a} - {b} {what} = {p['mean_diff'] * scale:+.2f} {unit}, "
                "with no confidence interval; run more seeds to judge a difference")
    lo, hi = p["ci_low"] * scale, p["ci_high"] * scale
    if lo <= 0 <= hi:
        return (f"no difference in {what} detectable at {conf}% with {p['n']} seeds: "
                f"{a} - {b} = {p['mean_diff'] * scale:+.2f} {unit} ({conf}% CI {lo:+.2f} to "
                f"{hi:+.2f}), so any gap is smaller than {max(abs(lo), abs(hi)):.2f} {unit}")
    higher = a if p["mean_diff"] > 0 else b
    pval = f"{p['p_value']:.3g}" if p["p_value"] is not None else "n/a (every seed gave the same gap)"
    return (f"{higher} has the higher {what} by {abs(p['mean_diff']) * scale:.2f} {unit} "
            f"({conf}% CI {lo:+.2f} to {hi:+.2f} for {a} - {b}, paired t-test p = {pval}, "
            f"{p['n']} seeds)")
