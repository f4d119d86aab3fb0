"""Small, dependency-free SVG charts for reports and the admin console (no CDN, no JS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")


def _fmt(v: float) -> str:
    if isinstance(v, int):  # a count: «9», not «9.00»
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, width: int = 520, height: int = 240,
              max_value: float | None = None, colour: str = PALETTE[0]) -> str:
    """Vertical bars with their values on top."""
    pad_l, pad_b, pad_t = 36, 36, 28
    n = max(1, len(items))
    top = max_value if max_value is not None else max([v for _, v in items] + [1e-9])
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    bw = plot_w / n * 0.7
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" class="ct">{escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#999"/>']
    for i, (label, value) in enumerate(items):
        x = pad_l + (i + 0.15) * plot_w / n
        h = 0 if top <= 0 else max(0.0, min(1.0, value / top)) * plot_h
        y = height - pad_b - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{colour}">'
                     f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" class="cv">{_fmt(value)}</text>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - pad_b + 14}" text-anchor="middle" class="cl">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(series: dict[str, Sequence[float]], *, title: str, bins: int = 20, lo: float | None = None,
              hi: float | None = None, width: int = 520, height: int = 240, marker: float | None = None,
              marker_label: str = "") -> str:
    """Overlaid histograms of one or more series (e.g. confidence of answerable vs unanswerable)."""
    values = [v for s in series.values() for v in s]
    if not values:
        values = [0.0]
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if hi <= lo:
        hi = lo + 1
    pad_l, pad_b, pad_t = 36, 40, 28
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    counts = {}
    for name, s in series.items():
        c = [0] * bins
        for v in s:
            i = min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins)))
            c[i] += 1
        counts[name] = c
    top = max([max(c) for c in counts.values()] + [1])
    bw = plot_w / bins
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" class="ct">{escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#999"/>']
    for si, (name, c) in enumerate(counts.items()):
        colour = PALETTE[si % len(PALETTE)]
        for i, k in enumerate(c):
            if not k:
                continue
            h = k / top * plot_h
            parts.append(f'<rect x="{pad_l + i * bw:.1f}" y="{height - pad_b - h:.1f}" width="{bw - 1:.1f}" '
                         f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"><title>{escape(name)}: {k}</title></rect>')
        parts.append(f'<rect x="{pad_l + 4 + si * 150}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{pad_l + 18 + si * 150}" y="{height - 5}" class="cl">{escape(name)} ({len(series[name])})</text>')
    for frac in (0, 0.5, 1):
        x = pad_l + frac * plot_w
        parts.append(f'<text x="{x:.1f}" y="{height - pad_b + 13}" text-anchor="middle" class="cl">'
                     f'{_fmt(lo + frac * (hi - lo))}</text>')
    if marker is not None and lo <= marker <= hi:
        x = pad_l + (marker - lo) / (hi - lo) * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{pad_t}" x2="{x:.1f}" y2="{height - pad_b}" stroke="#111" '
                     f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{pad_t + 10}" class="cl">{escape(marker_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(series: Mapping[str, Sequence[tuple[str, float]]], *, title: str, width: int = 520,
               height: int = 240, max_value: float | None = None) -> str:
    """Lines over a shared categorical x axis (e.g. days), for rates over time."""
    labels = list(dict.fromkeys(x for s in series.values() for x, _ in s))
    if not labels:
        labels = [""]
    top = max_value if max_value is not None else max([v for s in series.values() for _, v in s] + [1e-9])
    pad_l, pad_b, pad_t = 36, 40, 28
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    step = plot_w / max(1, len(labels) - 1)
    pos = {lab: pad_l + i * step for i, lab in enumerate(labels)}
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" class="ct">{escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#999"/>']
    for si, (name, pts) in enumerate(series.items()):
        colour = PALETTE[si % len(PALETTE)]
        coords = [(pos[x], height - pad_b - (0 if top <= 0 else v / top) * plot_h) for x, v in pts]
        if coords:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in coords]
        parts.append(f'<rect x="{pad_l + 4 + si * 130}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{pad_l + 18 + si * 130}" y="{height - 5}" class="cl">{escape(name)}</text>')
    for lab in (labels[0], labels[-1]):
        parts.append(f'<text x="{pos[lab]:.1f}" y="{height - pad_b + 13}" text-anchor="middle" class="cl">'
                     f'{escape(lab)}</text>')
    parts.append("</svg>")
    return "".join(parts)


CHART_CSS = """
svg.chart{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:6px}
svg.chart .ct{font:600 13px system-ui,sans-serif;fill:#111}
svg.chart .cv{font:11px system-ui,sans-serif;fill:#333}
svg.chart .cl{font:10px system-ui,sans-serif;fill:#555}
"""
