"""Minimal SVG charts (line charts and histograms) with axes, ticks, labels and a legend; no plotting library.

Charts are plain strings of SVG 1.1; every text is XML-escaped, so any series name is safe. Non-finite values
break a line (a gap) instead of being drawn.
"""

import math
from typing import List, Mapping, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["PALETTE", "histogram_chart", "line_chart", "nice_ticks"]

# Colour-blind-safe (Okabe-Ito) colours, in the order series are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_W, _H = 640, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 20, 56, 56


def nice_ticks(lo: float, hi: float, target: int = 6) -> List[float]:
    """Round tick positions (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) if lo else 1.0)
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t = first + len(ticks) * step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _range(values: Sequence[np.ndarray], pad: float = 0.0) -> Tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.05 or 0.5), hi + (abs(hi) * 0.05 or 0.5)
    span = hi - lo
    return lo - pad * span, hi + pad * span


class _Frame:
    """Maps data coordinates to the plot area and draws the axes."""

    def __init__(self, x_range: Tuple[float, float], y_range: Tuple[float, float]) -> None:
        xt = nice_ticks(*x_range)
        yt = nice_ticks(*y_range)
        # Widen the ranges to whole ticks so the axes end on labelled values.
        self.x0, self.x1 = min([x_range[0], *xt]), max([x_range[1], *xt])
        self.y0, self.y1 = min([y_range[0], *yt]), max([y_range[1], *yt])
        self.xt, self.yt = xt, yt

    def px(self, x: float) -> float:
        return _LEFT + (x - self.x0) / (self.x1 - self.x0) * (_W - _LEFT - _RIGHT)

    def py(self, y: float) -> float:
        return _H - _BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (_H - _TOP - _BOTTOM)

    def axes(self, title: str, xlabel: str, ylabel: str) -> List[str]:
        out = [
            f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" height="{_H - _TOP - _BOTTOM}" '
            'fill="none" stroke="#444" stroke-width="1"/>'
        ]
        for t in self.xt:
            x = self.px(t)
            out.append(f'<line x1="{x:.2f}" y1="{_H - _BOTTOM}" x2="{x:.2f}" y2="{_H - _BOTTOM + 5}" stroke="#444"/>')
            out.append(f'<line x1="{x:.2f}" y1="{_TOP}" x2="{x:.2f}" y2="{_H - _BOTTOM}" stroke="#eee"/>')
            out.append(f'<text x="{x:.2f}" y="{_H - _BOTTOM + 18}" text-anchor="middle">{escape(_fmt(t))}</text>')
        for t in self.yt:
            y = self.py(t)
            out.append(f'<line x1="{_LEFT - 5}" y1="{y:.2f}" x2="{_LEFT}" y2="{y:.2f}" stroke="#444"/>')
            out.append(f'<line x1="{_LEFT}" y1="{y:.2f}" x2="{_W - _RIGHT}" y2="{y:.2f}" stroke="#eee"/>')
            out.append(f'<text x="{_LEFT - 8}" y="{y + 4:.2f}" text-anchor="end">{escape(_fmt(t))}</text>')
        out.append(f'<text x="{_W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>')
        out.append(f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 14}" text-anchor="middle">{escape(xlabel)}</text>')
        cy = (_TOP + _H - _BOTTOM) / 2
        out.append(
            f'<text x="18" y="{cy}" text-anchor="middle" transform="rotate(-90 18 {cy})">{escape(ylabel)}</text>'
        )
        return out


def _legend(names: Sequence[str]) -> List[str]:
    """One row of entries between the title and the plot area, so the legend never hides data."""
    out = []
    x = _LEFT
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<line x1="{x}" y1="40" x2="{x + 18}" y2="40" stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{x + 24}" y="44">{escape(name)}</text>')
        x += 40 + 7 * len(name)
    return out


def _document(body: List[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        'font-family="sans-serif" font-size="12">'
    )
    return "\n".join(
        ['<?xml version="1.0" encoding="UTF-8"?>', head, f'<rect width="{_W}" height="{_H}" fill="white"/>']
        + body
        + ["</svg>", ""]
    )


def line_chart(
    series: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """SVG of one line per ``name -> (x, y)``; points with non-finite x or y leave gaps."""
    xs = [np.asarray(x, dtype=np.float64) for x, _ in series.values()]
    ys = [np.asarray(y, dtype=np.float64) for _, y in series.values()]
    frame = _Frame(_range(xs), _range(ys, pad=0.05))
    body = frame.axes(title, xlabel, ylabel)
    for i, (x, y) in enumerate(zip(xs, ys)):
        colour = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(x) & np.isfinite(y)
        segment: List[str] = []
        for k in range(len(x) + 1):
            if k < len(x) and ok[k]:
                segment.append(f"{frame.px(x[k]):.2f},{frame.py(y[k]):.2f}")
                continue
            if len(segment) == 1:  # an isolated point: draw a dot
                cx, cy = segment[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif segment:
                body.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}" stroke-width="2"/>')
            segment = []
    if len(series) > 1:
        body += _legend(list(series))
    return _document(body)


def histogram_chart(
    hists: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str = "density",
    notes: Optional[Sequence[str]] = None,
) -> str:
    """SVG of histograms ``name -> (bin_edges [B+1], heights [B])``, drawn as translucent bars with outlines."""
    edges = [np.asarray(e, dtype=np.float64) for e, _ in hists.values()]
    heights = [np.asarray(h, dtype=np.float64) for _, h in hists.values()]
    lo = min(float(e[0]) for e in edges) if edges else 0.0
    hi = max(float(e[-1]) for e in edges) if edges else 1.0
    top = max([float(np.nanmax(h)) for h in heights if h.size] + [0.0]) or 1.0
    frame = _Frame((lo, hi), (0.0, top * 1.05))
    body = frame.axes(title, xlabel, ylabel)
    base = frame.py(0.0)
    for i, (e, h) in enumerate(zip(edges, heights)):
        colour = PALETTE[i % len(PALETTE)]
        outline = [f"{frame.px(e[0]):.2f},{base:.2f}"]
        for k in range(len(h)):
            if not np.isfinite(h[k]) or h[k] <= 0:
                outline += [f"{frame.px(e[k]):.2f},{base:.2f}", f"{frame.px(e[k + 1]):.2f},{base:.2f}"]
                continue
            x0, x1, y = frame.px(e[k]), frame.px(e[k + 1]), frame.py(h[k])
            body.append(
                f'<rect x="{x0:.2f}" y="{y:.2f}" width="{max(x1 - x0, 0.1):.2f}" height="{base - y:.2f}" '
                f'fill="{colour}" fill-opacity="0.35" stroke="none"/>'
            )
            outline += [f"{x0:.2f},{y:.2f}", f"{x1:.2f},{y:.2f}"]
        outline.append(f"{frame.px(e[-1]):.2f},{base:.2f}")
        body.append(f'<polyline points="{" ".join(outline)}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    body += _legend(list(hists))
    for j, note in enumerate(notes or ()):
        body.append(f'<text x="{_LEFT + 8}" y="{_TOP + 16 + 15 * j}">{escape(note)}</text>')
    return _document(body)
