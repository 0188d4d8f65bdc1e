"""The report page's pictures as inline SVG, drawn on the server (no script, no CDN).

Each chart is an ``<svg role="img" data-chart=NAME>`` with a title and one element per data
point that carries its value (``data-value``), so a reader with a screen reader, and the browser
test, can check what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from worker.reports.schemas import Bucket, DayCount

WIDTH, HEIGHT, PAD = 720, 220, 32


def _frame(name: str, title: str, body: list[str], height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart" data-chart="{name}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )


def _bars(name: str, title: str, labels: Sequence[str], values: Sequence[int],
          label_every: int = 1) -> Markup:
    top = max(values, default=0) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(len(values), 1)
    body = [
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
        f'y2="{HEIGHT - PAD}"/>',
        f'<text class="tick" x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">0</text>',
    ]
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = inner_h * value / top
        x = PAD + k * step
        body.append(
            f'<rect class="bar" data-value="{value}" x="{x + step * 0.1:.1f}" '
            f'y="{HEIGHT - PAD - h:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if k % label_every == 0:
            body.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{HEIGHT - PAD + 14}" '
                        f'text-anchor="middle">{escape(label)}</text>')
    return _frame(name, title, body)


def daily_active(days: Sequence[DayCount]) -> Markup:
    return _bars("daily-active", "Daily active accounts, last 90 days",
                 [d.day.strftime("%b %d") for d in days], [d.accounts for d in days],
                 label_every=15)


def days_active_distribution(buckets: Sequence[Bucket]) -> Markup:
    return _bars("days-active", "Accounts by days active in the last 90 days",
                 [b.label for b in buckets], [b.accounts for b in buckets])


def licences(used: int, unused: int) -> Markup:
    """One stacked bar: licensed accounts in use against those idle."""
    total = used + unused
    inner_w, height = WIDTH - 2 * PAD, 90
    used_w = inner_w * used / total if total else 0
    body = [
        f'<rect class="bar used" data-value="{used}" x="{PAD}" y="20" width="{used_w:.1f}" '
        f'height="30"><title>In use: {used}</title></rect>',
        f'<rect class="bar unused" data-value="{unused}" x="{PAD + used_w:.1f}" y="20" '
        f'width="{inner_w - used_w if total else 0:.1f}" height="30">'
        f"<title>Unused: {unused}</title></rect>",
        f'<text class="tick" x="{PAD}" y="70">In use: {used}</text>',
        f'<text class="tick" x="{WIDTH - PAD}" y="70" text-anchor="end">Unused: {unused}</text>',
    ]
    return _frame("licences", "Licences in use against unused", body, height=height)
