"""Small inline-SVG charts for the HTML report (no JavaScript, no CDN: the report works offline).

Every text is escaped; numbers are formatted by the caller. Output is deterministic (no ids from
randomness, fixed float formatting) so reruns produce byte-identical reports.
"""

from __future__ import annotations

from html import escape

PALETTE = ("#2f6fb0", "#e07b39", "#3a9d5d", "#c23b3b", "#8a5fb5", "#6b7785", "#d4a017", "#1b9aaa", "#b5651d")


def _f(x: float) -> str:
    return f"{x:.1f}"


def bar_chart(
    labels: list[str],
    values: list[float],
    *,
    title: str,
    value_text: list[str] | None = None,
    colors: list[str] | None = None,
    width: int = 640,
    height: int = 260,
) -> str:
    """Vertical bars; negative values go below a zero line."""
    n = max(len(values), 1)
    left, right, top, bottom = 50, 10, 30, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax = max([0.0, *values]) or 1.0
    vmin = min([0.0, *values])
    span = (vmax - vmin) or 1.0
    zero_y = top + plot_h * (vmax / span)
    bw = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="ct">{escape(title)}</text>',
        f'<line x1="{left}" y1="{_f(zero_y)}" x2="{width - right}" y2="{_f(zero_y)}" stroke="#999"/>',
    ]
    for i, value in enumerate(values):
        h = plot_h * abs(value) / span
        x = left + i * bw + bw * 0.15
        y = zero_y - h if value >= 0 else zero_y
        color = (colors or PALETTE)[i % len(colors or PALETTE)]
        text = value_text[i] if value_text else f"{value:,.0f}"
        parts.append(
            f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(bw * 0.7)}" height="{_f(max(h, 0.5))}" fill="{color}">'
            f"<title>{escape(labels[i])}: {escape(text)}</title></rect>"
        )
        ty = y - 4 if value >= 0 else y + h + 12
        parts.append(
            f'<text x="{_f(x + bw * 0.35)}" y="{_f(ty)}" text-anchor="middle" class="cv">{escape(text)}</text>'
        )
        parts.append(
            f'<text x="{_f(x + bw * 0.35)}" y="{height - bottom + 16}" text-anchor="middle" class="cl">'
            f"{escape(labels[i])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    labels: list[str], values: list[float], *, title: str, value_text: list[str], width: int = 760
) -> str:
    """Horizontal bars (top loss-making groups): long Chinese names fit on the left."""
    row_h, top, label_w = 24, 30, 330
    height = top + row_h * max(len(values), 1) + 10
    vmax = max([abs(v) for v in values] or [1.0]) or 1.0
    plot_w = width - label_w - 110
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="ct">{escape(title)}</text>',
    ]
    for i, value in enumerate(values):
        y = top + i * row_h
        w = plot_w * abs(value) / vmax
        label = labels[i] if len(labels[i]) <= 26 else labels[i][:25] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" class="cl">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{_f(max(w, 0.5))}" height="{row_h - 8}" fill="#c23b3b">'
            f"<title>{escape(labels[i])}: {escape(value_text[i])}</title></rect>"
        )
        parts.append(
            f'<text x="{_f(label_w + w + 6)}" y="{y + 16}" class="cv">{escape(value_text[i])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    xs: list[str], ys: list[float], *, title: str, y_text: list[str], width: int = 640, height: int = 260
) -> str:
    """A line with labelled points (point-value sensitivity)."""
    left, right, top, bottom = 60, 20, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax, ymin = max([*ys, 0.0]), min([*ys, 0.0])
    span = (ymax - ymin) or 1.0

    def py(v: float) -> float:
        return top + plot_h * (ymax - v) / span

    step = plot_w / max(len(xs) - 1, 1)
    points = " ".join(f"{_f(left + i * step)},{_f(py(v))}" for i, v in enumerate(ys))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="ct">{escape(title)}</text>',
        f'<line x1="{left}" y1="{_f(py(0))}" x2="{width - right}" y2="{_f(py(0))}" stroke="#999" '
        f'stroke-dasharray="4 3"/>',
        f'<polyline points="{points}" fill="none" stroke="#2f6fb0" stroke-width="2"/>',
    ]
    for i, v in enumerate(ys):
        x = left + i * step
        parts.append(
            f'<circle cx="{_f(x)}" cy="{_f(py(v))}" r="4" fill="{"#3a9d5d" if v >= 0 else "#c23b3b"}"/>'
        )
        parts.append(
            f'<text x="{_f(x)}" y="{_f(py(v) - 8)}" text-anchor="middle" class="cv">{escape(y_text[i])}</text>'
        )
        parts.append(
            f'<text x="{_f(x)}" y="{height - 14}" text-anchor="middle" class="cl">{escape(xs[i])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
