"""One number format for every table: means and spreads to the same decimal place, and
half-up rounding (no banker's surprises)."""

import pytest

from jbatch.report import table


@pytest.mark.parametrize(
    ("mean", "std", "text"),
    [
        (280.5, 1.5, "280.5 ± 1.5"),  # was "280 ± 1.5": the mean lost its decimal
        (166.5, 15.0, "167 ± 15"),  # half-up at the spread's place, never round-half-even's 166
        (1175.333, 327.2, "1175 ± 327"),
        (0.012717, 0.0034, "0.0127 ± 0.0034"),
        (26.33, 1.247, "26.3 ± 1.2"),
        (0.969444, 1.4e-16, "0.9694"),  # equal seeds: float noise is not a spread
    ],
)
def test_a_mean_is_shown_to_its_spreads_decimal_place(mean, std, text):
    assert table.spread(mean, std, 3) == text


def test_single_numbers_rates_and_ratios():
    assert [table.num(v) for v in (280.5, 16286.4, 0.95, 7.0, 2.5e9, None)] == [
        "280.5",
        "16286",
        "0.95",
        "7",
        "2.5e+09",
        "-",
    ]
    assert table.rate(1250.0) == "1.3k" and table.ratio(1.005) == "1.01x" and table.percent(0.125) == "13%"
    assert table.interval(0.01234, 0.5678) == "[0.0123, 0.568]"
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        table.markdown(["a", "b"], [["1"]])
