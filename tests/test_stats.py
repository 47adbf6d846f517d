"""The statistics of both reports against numbers computed by hand (and Student's t from a printed table)."""
import math

import pytest

from autodropout.core.stats import interval, mean_se, number, paired, per_seed_mean, summarize, t_quantile, verdict


@pytest.mark.parametrize("df, value", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_t_quantiles_match_the_table(df, value):
    assert t_quantile(df) == pytest.approx(value, abs=1e-4)


def test_mean_se_and_interval_by_hand():
    # x = 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; s^2 = 5/3;
    # se = sqrt(5/3) / 2 = 0.645497; half width = t(0.975, 3) * se = 3.182446 * 0.645497 = 2.054260.
    s = summarize([1, 2, 3, 4])
    assert (s.n, s.mean) == (4, 2.5)
    assert s.sd == pytest.approx(math.sqrt(5 / 3))
    assert s.se == pytest.approx(0.6454972, abs=1e-7)
    assert (s.low, s.high) == (pytest.approx(0.445740, abs=1e-6), pytest.approx(4.554260, abs=1e-6))
    assert s.to_json() == {"n": 4, "mean": 2.5, "se": s.se, "ci95": [s.low, s.high]}
    assert s.excludes_zero()


def test_paired_difference_by_hand_over_the_shared_seeds():
    a = {1000: 0.90, 1001: 0.85, 1002: 0.88}
    b = {1000: 0.87, 1001: 0.86, 1002: 0.84, 1003: 0.50}  # seed 1003 has no partner: left out
    # differences 0.03, -0.01, 0.04: mean 0.02; deviations 0.01, -0.03, 0.02 -> s^2 = 0.0014 / 2 = 0.0007;
    # se = sqrt(0.0007 / 3) = 0.0152753; half width = t(0.975, 2) * se = 4.302653 * 0.0152753 = 0.0657241.
    d = paired(a, b)
    assert d.n == 3 and d.mean == pytest.approx(0.02)
    assert d.se == pytest.approx(0.0152753, abs=1e-7)
    assert (d.low, d.high) == (pytest.approx(-0.0457241, abs=1e-6), pytest.approx(0.0857241, abs=1e-6))
    assert not d.excludes_zero()
    assert paired(b, a).mean == pytest.approx(-0.02)


def test_one_value_has_no_spread_and_none_has_no_mean():
    one = summarize([0.7])
    assert (one.n, one.mean, one.se, one.low, one.high) == (1, 0.7, None, None, None)
    assert one.to_json()["ci95"] is None and not one.excludes_zero()
    assert summarize([]).mean is None


def test_identical_differences_give_a_zero_width_interval():
    d = paired({1: 0.9, 2: 0.8}, {1: 0.85, 2: 0.75})
    assert d.mean == pytest.approx(0.05) and d.se == pytest.approx(0.0, abs=1e-12)
    assert d.low == pytest.approx(0.05) and d.excludes_zero()


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        summarize([1.0, float("nan")])


def test_per_seed_mean_averages_the_runs_that_have_the_seed():
    assert per_seed_mean([{1: 1.0, 2: 3.0}, {1: 2.0}]) == {1: 1.5, 2: 3.0}


@pytest.mark.parametrize("value, digits, sign, text", [
    (0.86, 4, "", "0.8600"), (2195.4, 4, "", "2195"), (12345.6, 4, "", "12346"), (20.0, 2, "", "20"),
    (122.3, 2, "", "122"), (0.0033333, 2, "", "0.0033"), (-0.0096833, 3, "+", "-0.00968"), (0.04, 3, "+", "+0.0400"),
])
def test_numbers_in_tables(value, digits, sign, text):
    assert number(value, digits, sign) == text


def test_both_reports_write_a_summary_the_same_way():
    # 1, 2, 3: mean 2, s = 1, se = 1 / sqrt(3) = 0.57735, t(0.975, 2) = 4.302653, half width 2.484138.
    s = summarize([1, 2, 3])
    assert mean_se(s) == "2.000 ± 0.58" and interval(s) == "[-0.4841, 4.484]"
    assert mean_se(s, signed=True) == "+2.00 ± 0.58" and interval(s, signed=True) == "[-0.484, +4.48]"
    assert mean_se(summarize([0.5])) == "0.5000" and interval(summarize([0.5])) == "-"
    assert mean_se(summarize([0.9, 0.9])) == "0.9000 ± 0"  # identical values: no rounding noise
    assert verdict(s, "max") == "no difference at 95%"
    assert verdict(summarize([1, 1.1, 0.9]), "max") == "better" and verdict(summarize([1, 1.1, 0.9]), "min") == "worse"

