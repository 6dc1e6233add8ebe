"""How every table jbatch writes shows its numbers: one Markdown builder, one set of
number formats (sweep tables, throughput, scaling, claims and comparisons all use these).

Rounding is half-up on the decimal digits Python prints for a float (``280.5`` -> ``281``
at no decimals, never banker's ``280``), and a mean is shown to the same decimal place as
its spread, so ``280.5 ± 1.5`` stays ``280.5 ± 1.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from jbatch.analysis.tradeoff import interval_bounds

SIGNIFICANT = 4  # digits of a single number
SPREAD_DIGITS = 2  # significant digits of a spread; the mean follows its decimal place


def _round(v: float, decimals: int) -> str:
    q = Decimal(1).scaleb(-decimals)
    return str(Decimal(repr(float(v))).quantize(q, rounding=ROUND_HALF_UP))


def _decimals(v: float, digits: int) -> int:
    """Decimal places that show ``v`` to ``digits`` significant digits (never negative)."""
    if v == 0:
        return 0
    return max(0, digits - 1 - math.floor(math.log10(abs(v))))


def num(v: float | None, digits: int = SIGNIFICANT) -> str:
    """A number to at most ``digits`` significant digits (trailing zeros dropped), whole
    numbers keep every integer digit; tiny and huge ones in scientific notation; None and
    non-finite values as ``-``.

    Examples:
      >>> num(280.5), num(166.5, 3), num(16286.4), num(0.95), num(0.0004321), num(2.5e9), num(None)
      ('280.5', '167', '16286', '0.95', '4.321e-04', '2.5e+09', '-')
    """
    if v is None or not math.isfinite(v):
        return "-"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e7):
        mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
        return f"{_trim(mantissa)}e{exponent}"
    return _trim(_round(v, _decimals(v, digits)))


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def spread(mean: float | None, std: float | None, n: int = 2) -> str:
    """``mean ± std``: the spread to 2 significant digits and the mean to the same decimal
    place; a single value (``n`` 1, or no spread) as ``num``.

    Examples:
      >>> spread(280.5, 1.5), spread(1175.2, 270.1), spread(0.01272, 0.0034), spread(7.0, 0.0, 1)
      ('280.5 ± 1.5', '1175 ± 270', '0.0127 ± 0.0034', '7')
    """
    if mean is None or not math.isfinite(mean):
        return "-"
    if n < 2 or std is None or not math.isfinite(std) or std <= 1e-9 * abs(mean):  # equal values (float noise)
        return num(mean)
    if abs(mean) < 1e-3 or abs(mean) >= 1e7:
        return f"{mean:.{SIGNIFICANT - 1}e} ± {std:.{SPREAD_DIGITS - 1}e}"
    d = _decimals(std, SPREAD_DIGITS)
    return f"{_round(mean, d)} ± {_round(std, d)}"


def interval(low: float | None, high: float | None) -> str:
    """A closed interval ``[low, high]`` with the precision of ``num`` (3 digits); an
    infinite end as ``∞``.

    Examples:
      >>> interval(0.0123, 4.5678), interval(0.0, math.inf)
      ('[0.0123, 4.57]', '[0, ∞]')
    """

    def end(v: float | None) -> str:
        return ("∞" if v > 0 else "-∞") if v is not None and math.isinf(v) else num(v, 3)

    return f"[{end(low)}, {end(high)}]"


def rate(v: float | None) -> str:
    """A rate such as samples/s: ``32.9k``, ``1.2M``, ``950``.

    Examples:
      >>> rate(32899.7), rate(950.2), rate(1.234e6)
      ('32.9k', '950', '1.23M')
    """
    if v is None or not math.isfinite(v):
        return "-"
    if abs(v) >= 1e6:
        return f"{num(v / 1e6, 3)}M"
    if abs(v) >= 1e3:
        return f"{_round(v / 1e3, 1)}k"
    return _round(v, 0)


def ratio(v: float | None) -> str:
    """A ratio as ``1.23x``."""
    return "-" if v is None or not math.isfinite(v) else f"{_round(v, 2)}x"


def percent(v: float | None, decimals: int = 0) -> str:
    """A fraction as a percentage: ``0.415`` -> ``42%``."""
    return "-" if v is None or not math.isfinite(v) else f"{_round(100 * v, decimals)}%"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: header, rule, one line per row (cells as given).

    Examples:
      >>> markdown(["B", "steps"], [["1", "1175"]])
      ['| B | steps |', '|---|---|', '| 1 | 1175 |']
    """
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"a row has {len(r)} cells, the header {len(header)}")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def interval_text(ci: dict[str, Any]) -> str:
    """``[low, high]`` of a bootstrap interval (``interval_bounds``), or why there is none."""
    bounds = interval_bounds(ci)
    return "no interval (one seed per batch size)" if bounds is None else interval(*bounds)
