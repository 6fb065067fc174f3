"""The two-sample tests of logaudit.stats, checked against scipy on known inputs and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss

from logaudit.analysis.stats import (
    binomial_test,
    bonferroni,
    cohens_h,
    fisher_exact,
    holm,
    mann_whitney_counts,
    new_event_test,
    poisson_rate_test,
    quantile_test,
    rate_ratio,
)

TABLES = [(25, 1837, 26, 449), (0, 500, 7, 480), (3, 120, 0, 100), (0, 1000, 0, 1000), (1, 5, 4, 5),
          (50_000, 5_000_000, 60_000, 5_000_000), (12, 12, 0, 30)]


@pytest.mark.parametrize(("xb", "nb", "xc", "nc"), TABLES)
def test_fisher_exact_equals_scipy(xb, nb, xc, nc):
    res = fisher_exact(xb, nb, xc, nc)
    want = ss.fisher_exact([[xc, nc - xc], [xb, nb - xb]], alternative="two-sided").pvalue
    # log-gamma of millions carries ~1e-9 absolute error in log space, so big tables agree to ~1e-7
    assert res.p_value == pytest.approx(want, rel=1e-9 if nb + nc < 100_000 else 1e-6, abs=0)
    assert res.effect_size == pytest.approx(2 * math.asin(math.sqrt(xc / nc)) - 2 * math.asin(math.sqrt(xb / nb)))
    assert res.test == "fisher_exact" and res.effect_measure == "cohens_h"
    assert not math.isnan(res.p_value)


def test_fisher_exact_known_value():
    # the bundled sample's request error rate: 25 of 1837 vs 26 of 449
    assert fisher_exact(25, 1837, 26, 449).p_value == pytest.approx(3.965188025511575e-07, rel=1e-9)
    # a 10M-entry-sized table: exact to 1e-9 against scipy, in milliseconds
    big = fisher_exact(50_000, 5_000_000, 60_000, 5_000_000).p_value
    assert big == pytest.approx(ss.fisher_exact([[60_000, 4_940_000], [50_000, 4_950_000]]).pvalue, rel=1e-6)


@pytest.mark.parametrize(("xb", "nb", "xc", "nc"), [(0, 0, 5, 100), (5, 100, 0, 0), (0, 0, 0, 0)])
def test_fisher_exact_without_requests_is_not_a_test(xb, nb, xc, nc):
    res = fisher_exact(xb, nb, xc, nc)
    assert (res.p_value, res.effect_size) == (1.0, None)


def test_zero_error_baseline_still_detects_a_regression():
    res = fisher_exact(0, 2000, 15, 500)  # a baseline that never failed
    assert res.p_value < 1e-8
    assert res.p_value == pytest.approx(ss.fisher_exact([[15, 485], [0, 2000]]).pvalue, rel=1e-9)
    assert res.effect_size == pytest.approx(2 * math.asin(math.sqrt(15 / 500)))


@pytest.mark.parametrize(("kb", "eb", "kc", "ec"), [(7, 1837, 22, 449), (0, 3000, 4, 500), (40, 1000, 40, 1000),
                                                      (3, 10_000, 0, 100), (159, 1837, 36, 449)])
def test_poisson_rate_test_is_the_conditional_binomial_test(kb, eb, kc, ec):
    res = poisson_rate_test(kb, eb, kc, ec)
    want = ss.binomtest(kc, kb + kc, ec / (eb + ec), alternative="two-sided").pvalue
    assert res.p_value == pytest.approx(want, rel=1e-9)
    assert res.effect_size == pytest.approx(((kc + 0.5) / ec) / ((kb + 0.5) / eb))
    assert rate_ratio(kb, eb, kc, ec) == res.effect_size


def test_poisson_rate_test_edge_cases():
    assert poisson_rate_test(0, 100, 0, 100).p_value == 1.0  # nothing seen on either side
    assert poisson_rate_test(5, 0, 5, 100).p_value == 1.0  # no exposure on one side
    assert poisson_rate_test(5, 0, 5, 100).effect_size is None
    assert poisson_rate_test(0, 100, 0, 100).effect_size == pytest.approx(1.0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_fisher_and_binomial_equal_scipy_property(nb, nc, data):
    xb = data.draw(st.integers(0, nb))
    xc = data.draw(st.integers(0, nc))
    want = ss.fisher_exact([[xc, nc - xc], [xb, nb - xb]]).pvalue
    assert fisher_exact(xb, nb, xc, nc).p_value == pytest.approx(want, rel=1e-9, abs=1e-250)
    p = data.draw(st.floats(0.001, 0.999))
    assert binomial_test(xc, nc, p) == pytest.approx(ss.binomtest(xc, nc, p).pvalue, rel=1e-9, abs=1e-250)


def test_new_event_test_is_share_to_the_power_k():
    assert new_event_test(3, 3.0, 1.0).p_value == pytest.approx(0.25 ** 3)
    res = new_event_test(3, 1837, 449)
    assert res.p_value == pytest.approx(ss.binomtest(3, 3, 449 / 2286, alternative="greater").pvalue, rel=1e-9)
    # a canary with 3 requests next to a busy baseline: one occurrence is already telling
    assert new_event_test(1, 5000, 3).p_value < 0.001
    # a baseline that saw almost nothing: not evidence of anything new
    assert new_event_test(1, 3, 5000).p_value > 0.99
    assert new_event_test(0, 100, 100).p_value == 1.0
    assert new_event_test(2, 0, 100).p_value == 1.0


def _expand(values, counts):
    return np.repeat(np.asarray(values, dtype=float), np.asarray(counts, dtype=int))


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_counts_equals_scipy_on_tied_data(seed):
    rng = np.random.default_rng(seed)
    values = np.arange(40)
    cb = rng.integers(0, 30, size=40)
    cc = rng.integers(0, 30, size=40) + (np.arange(40) > 20) * seed  # a growing shift
    res = mann_whitney_counts(values, cb, cc)
    want = ss.mannwhitneyu(_expand(values, cc), _expand(values, cb), method="asymptotic")
    assert res.statistic == pytest.approx(want.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(want.pvalue, rel=1e-9)
    assert res.effect_size == pytest.approx(2 * want.statistic / (cb.sum() * cc.sum()) - 1)


def test_mann_whitney_counts_unsorted_values_and_known_value():
    # x = canary, y = baseline; scipy's documented example values, order scrambled
    x = [19, 22, 16, 29, 24]
    y = [20, 11, 17, 12]
    vals = sorted(set(x) | set(y), reverse=True)
    res = mann_whitney_counts(vals, [y.count(v) for v in vals], [x.count(v) for v in vals])
    want = ss.mannwhitneyu(x, y, method="asymptotic")
    assert (res.statistic, round(res.p_value, 12)) == (want.statistic, round(want.pvalue, 12))
    assert res.statistic == 17.0


def test_mann_whitney_counts_edge_cases():
    assert mann_whitney_counts([1, 2], [0, 0], [3, 4]).p_value == 1.0  # empty side
    everything_tied = mann_whitney_counts([5.0], [10], [7])
    assert everything_tied.p_value == 1.0 and everything_tied.effect_size == 0.0
    with pytest.raises(ValueError):
        mann_whitney_counts([1, 2], [1], [1, 2])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=2, max_size=25))
def test_mann_whitney_counts_property(pairs):
    cb = [a for a, _ in pairs]
    cc = [b for _, b in pairs]
    values = list(range(len(pairs)))
    res = mann_whitney_counts(values, cb, cc)
    assert 0.0 <= res.p_value <= 1.0
    if sum(cb) and sum(cc) and len({v for v, a, b in zip(values, cb, cc, strict=True) if a + b}) > 1:
        want = ss.mannwhitneyu(_expand(values, cc), _expand(values, cb), method="asymptotic")
        assert res.p_value == pytest.approx(want.pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantile_test_splits_at_the_pooled_quantile(q):
    rng = np.random.default_rng(11)
    values = np.arange(300)
    cb = rng.integers(0, 20, size=300)
    cc = rng.integers(0, 20, size=300)
    res = quantile_test(values, cb, cc, q)
    pooled = _expand(values, cb + cc)
    split = np.quantile(pooled, q, method="inverted_cdf")
    assert res.statistic == split
    above_b = int(_expand(values, cb).__gt__(split).sum())
    above_c = int(_expand(values, cc).__gt__(split).sum())
    want = ss.fisher_exact([[above_c, cc.sum() - above_c], [above_b, cb.sum() - above_b]]).pvalue
    assert res.p_value == pytest.approx(want, rel=1e-9)
    assert res.effect_size == pytest.approx(cohens_h(above_b / cb.sum(), above_c / cc.sum()))


def test_quantile_test_detects_a_slower_tail_and_handles_empty_sides():
    values = np.arange(100)
    cb = np.full(100, 50)
    cc = np.full(100, 10)
    cc[90:] = 200  # canary: most of its values in the top 10 %
    assert quantile_test(values, cb, cc, 0.95).p_value < 1e-20
    assert quantile_test(values, cb, np.zeros(100), 0.95).p_value == 1.0
    with pytest.raises(ValueError):
        quantile_test(values, cb, cc, 1.0)


def test_holm_and_bonferroni():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert bonferroni(p) == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == [] and bonferroni([]) == []
    assert holm([0.0, 0.0, 0.2]) == [0.0, 0.0, pytest.approx(0.2)]


def test_cohens_h_is_defined_at_zero_and_one():
    assert cohens_h(0.0, 0.0) == 0.0
    assert cohens_h(0.0, 1.0) == pytest.approx(math.pi)
    assert cohens_h(0.5, 0.25) < 0
