"""The experiment statistics against scipy, and the sequential test's error rate under daily looks."""

import numpy as np
import pytest
from scipy import stats

from experiments import statistics

FIXTURES = [
    ([120, 150], [1000, 1000]),
    ([31, 45, 52], [400, 410, 395]),
    ([5, 0], [50, 60]),
    ([900, 1012, 955, 1001], [10000, 10020, 9980, 10010]),
]


@pytest.mark.parametrize(("successes", "trials"), FIXTURES)
def test_chi_square_equals_scipy(successes, trials):
    table = [[s, n - s] for s, n in zip(successes, trials, strict=True)]
    expected = stats.chi2_contingency(table, correction=False)

    statistic, p = statistics.chi_square(successes, trials)

    assert statistic == pytest.approx(expected.statistic, abs=1e-6)
    assert p == pytest.approx(expected.pvalue, abs=1e-6)


@pytest.mark.parametrize(("successes", "trials"), [f for f in FIXTURES if len(f[0]) == 2])
def test_the_two_proportion_z_test_equals_scipys_2x2_chi_square(successes, trials):
    # On two arms the pooled z-test and Pearson's chi-square are the same test: z² = χ², same p.
    expected = stats.chi2_contingency([[s, n - s] for s, n in zip(successes, trials, strict=True)], correction=False)

    z, p = statistics.two_proportion_z(successes[0], trials[0], successes[1], trials[1])

    assert z * z == pytest.approx(expected.statistic, abs=1e-6)
    assert p == pytest.approx(expected.pvalue, abs=1e-6)
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-12)


def test_holm_adjusts_like_the_textbook():
    assert statistics.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_wilson_interval_matches_the_formula_and_stays_in_range():
    low, high = statistics.wilson_interval(0, 10)
    assert low == 0 and 0 < high < 0.35
    low, high = statistics.wilson_interval(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_a_sample_ratio_mismatch_is_flagged_and_a_fair_split_is_not():
    assert statistics.sample_ratio_mismatch([5000, 5050], [50, 50]) > statistics.SRM_ALPHA
    assert statistics.sample_ratio_mismatch([5000, 5400], [50, 50]) < statistics.SRM_ALPHA
    assert statistics.sample_ratio_mismatch([9000, 1000], [90, 10]) > statistics.SRM_ALPHA


def test_an_aa_experiment_watched_daily_for_30_days_keeps_the_sequential_tests_false_positives_under_5_percent():
    # 1,000 A/A experiments (both arms 10%), 300 people per arm a day, looked at every day for 30 days.
    rng = np.random.default_rng(20261127)
    experiments, days, daily, rate = 1000, 30, 300, 0.10
    a = rng.binomial(daily, rate, (experiments, days)).cumsum(axis=1)
    b = rng.binomial(daily, rate, (experiments, days)).cumsum(axis=1)
    n = daily * np.arange(1, days + 1)
    ratio = statistics.msprt_likelihood_ratio(a, n, b, n)
    always_valid_p = np.minimum.accumulate(np.minimum(1.0, 1 / ratio), axis=1)
    sequential_false_positives = (always_valid_p[:, -1] < 0.05).mean()
    # The fixed-horizon z-test looked at daily (the mistake the sequential test exists for).
    pooled = (a + b) / (2 * n)
    z = (b - a) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    peeking_false_positives = (2 * stats.norm.sf(np.abs(z)) < 0.05).any(axis=1).mean()

    assert sequential_false_positives <= 0.05
    assert peeking_false_positives > 0.15  # why the always-valid test is the one that decides


def test_the_sequential_test_finds_a_real_difference():
    p = None
    for day in range(1, 31):
        p = statistics.always_valid_p(p, int(0.10 * 500 * day), 500 * day, int(0.13 * 500 * day), 500 * day)
    assert p < 0.01


def test_bandit_weights_favour_the_better_arm_keep_the_floor_and_sum_to_100():
    weights = statistics.bandit_weights([100, 160, 90], [1000, 1000, 1000], floor=0.05, seed=1)

    assert sum(weights) == 100
    assert weights[1] == max(weights) and min(weights) >= 5


def test_the_sample_ratio_check_leaves_out_arms_weighted_zero_unless_people_landed_there():
    assert statistics.sample_ratio_mismatch([500, 500, 0], [50, 50, 0]) > statistics.SRM_ALPHA
    assert statistics.sample_ratio_mismatch([500, 500, 3], [50, 50, 0]) == 0.0
