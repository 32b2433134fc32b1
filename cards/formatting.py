"""Number formatting for cards: money in yuan, percentages, scores and days.

The functions return plain strings made only of digits, separators and symbols, so templates can
emit them without escaping (the template filters wrap them as safe markup).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_CENT = Decimal("0.01")
PLACEHOLDER = "—"


def to_decimal(value: object) -> Decimal | None:
    """A finite Decimal from int/float/str/Decimal, else None (never raises on garbage)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def yuan(value: object) -> Decimal | None:
    """Round to fen (2 places, half up) — the unit of every amount the product shows."""
    number = to_decimal(value)
    return None if number is None else number.quantize(_CENT, rounding=ROUND_HALF_UP)


def format_money(value: object) -> str:
    """``Decimal('8490.505')`` → ``¥8,490.51``; negative → ``-¥1,200.00``; unknown → ``—``."""
    amount = yuan(value)
    if amount is None:
        return PLACEHOLDER
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def format_percent(ratio: object, places: int = 1) -> str:
    """A ratio (1.485) as a percentage (``148.5%``); unknown → ``—``."""
    number = to_decimal(ratio)
    if number is None:
        return PLACEHOLDER
    quantum = Decimal(1).scaleb(-places) if places else Decimal(1)
    return f"{(number * 100).quantize(quantum, rounding=ROUND_HALF_UP):,f}%"


def format_number(value: object, places: int = 2) -> str:
    """Scores and other plain figures with thousands separators (``1,484.83``)."""
    number = to_decimal(value)
    if number is None:
        return PLACEHOLDER
    quantum = Decimal(1).scaleb(-places) if places else Decimal(1)
    return f"{number.quantize(quantum, rounding=ROUND_HALF_UP):,f}"
