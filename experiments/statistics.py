"""The statistics of an experiment, pure functions of counts (scipy and numpy do the arithmetic).

- Rates with Wilson 95% intervals (they stay inside 0–1 and behave at small counts).
- Fixed-horizon tests: Pearson's chi-square over all arms, and each arm against the control by
  a pooled two-proportion z-test, Holm-corrected for the number of comparisons.
- An always-valid test that may be looked at every day: the mixture sequential probability
  ratio test (mSPRT, Johari, Pekelis and Walsh, "Always valid inference", 2017) on the
  difference of two proportions with a normal mixing distribution. Its p-value is the running
  minimum of 1/Λ over every look, so peeking does not inflate false positives.
- The sample-ratio-mismatch check: a chi-square goodness of fit of the people assigned to each
  arm against the weights; p < 0.001 means assignment or logging is broken and the results
  cannot be trusted.
- Thompson sampling for the bandit: each arm's probability of being best under Beta posteriors.
"""

import math

import numpy as np
from scipy import stats

SRM_ALPHA = 0.001
# The mixing distribution's spread: the size of difference the test is most sensitive to (2
# percentage points). Validity holds for any value; this one suits engagement rates.
MSPRT_TAU = 0.02


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def chi_square(successes: list[int], trials: list[int]) -> tuple[float, float]:
    """Pearson's chi-square (no continuity correction) on the arms × {success, failure} table: (statistic, p)."""
    table = np.array([[s, n - s] for s, n in zip(successes, trials, strict=True)], dtype=float)
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    statistic, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p)


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of arm 2 against arm 1: (z, two-sided p)."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (s1 + s2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 0.0, 1.0
    z = (s2 / n2 - s1 / n1) / spread
    return z, float(2 * stats.norm.sf(abs(z)))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def msprt_likelihood_ratio(s1, n1, s2, n2, tau: float = MSPRT_TAU):
    """Λ for "the rates differ" against "they are equal", at the current counts (arrays work too)."""
    s1, n1, s2, n2 = (np.asarray(x, dtype=float) for x in (s1, n1, s2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = s1 / n1, s2 / n2
        variance = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        tau2 = tau * tau
        ratio = np.sqrt(variance / (variance + tau2)) * np.exp(tau2 * (p2 - p1) ** 2 / (2 * variance * (variance + tau2)))
    return np.where((n1 > 0) & (n2 > 0) & (variance > 0), ratio, 1.0)


def always_valid_p(previous: float | None, s1: int, n1: int, s2: int, n2: int, tau: float = MSPRT_TAU) -> float:
    """The sequential p-value after this look: the running minimum of 1/Λ."""
    now = float(min(1.0, 1 / float(msprt_likelihood_ratio(s1, n1, s2, n2, tau))))
    return now if previous is None else min(previous, now)


def sample_ratio_mismatch(assigned: list[int], weights: list[float]) -> float:
    """The p-value of the people assigned per arm given the weights (small: assignment is broken)."""
    if any(n and not w for n, w in zip(assigned, weights, strict=True)):
        return 0.0  # people in an arm that should get nobody
    pairs = [(n, w) for n, w in zip(assigned, weights, strict=True) if w]
    total = sum(n for n, _ in pairs)
    if total == 0 or len(pairs) < 2:
        return 1.0
    expected = [total * w / sum(w for _, w in pairs) for _, w in pairs]
    return float(stats.chisquare([n for n, _ in pairs], expected).pvalue)


def probability_best(successes: list[int], trials: list[int], draws: int = 20000, seed: int | None = None) -> list[float]:
    """Each arm's probability of having the highest rate, under Beta(1 + successes, 1 + failures)."""
    rng = np.random.default_rng(seed)
    samples = np.stack([rng.beta(1 + s, 1 + n - s, draws) for s, n in zip(successes, trials, strict=True)])
    best = np.bincount(samples.argmax(axis=0), minlength=len(trials))
    return (best / draws).tolist()


def bandit_weights(successes: list[int], trials: list[int], floor: float, seed: int | None = None) -> list[int]:
    """Thompson-sampling weights in whole percent summing to 100, each arm at least `floor`."""
    share = np.array(probability_best(successes, trials, seed=seed))
    floor = min(floor, 1 / len(share))
    share = floor + (1 - floor * len(share)) * share
    percent = np.floor(share * 100).astype(int)
    for index in np.argsort(-(share * 100 - percent))[: 100 - percent.sum()]:
        percent[index] += 1  # largest remainders take what rounding left over
    return percent.tolist()
