"""Charts for reports: matplotlib figures built from the DataFrames `Audit` returns.

One function per chart; each takes DataFrames (possibly empty) and returns a
`matplotlib.figure.Figure`; `save_png` writes one at print resolution. Every figure is
attached to the Agg canvas explicitly (`FigureCanvasAgg`, no pyplot): charts render the same
in a cron job, a container or a thread, whatever `MPLBACKEND` says, and importing this module
does not switch the backend of a notebook that also uses pyplot.

Conventions, the same on every chart:

* colours from the Okabe-Ito palette (readable with every common colour-vision deficiency);
  series beyond eight change line style and marker too, and bars carry hatches, so nothing
  depends on colour alone and the charts survive black-and-white printing;
* time axes in UTC, labelled so; deploys (from the audit log) as dashed vertical lines;
* sized for an A4/Letter page (7.5 in wide) at 300 dpi, fonts 7-10 pt;
* an empty input gives a figure saying "No data in this window", never an exception.

>>> from logaudit.present.charts import error_rate_timeline, save_png
>>> fig = error_rate_timeline(audit.timeline("15m"), audit.revisions())   # doctest: +SKIP
>>> save_png(fig, "error-rate.png")                                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from logaudit.catalog.catalog import CATEGORIES
from logaudit.core.jsonable import plain
from logaudit.present.display import ms, revision_label, service_label

#: Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
#: Order in which series take colours: the strongest contrasts on white first, yellow last.
SERIES_COLORS = [OKABE_ITO[c] for c in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple",
                                        "sky_blue", "black", "yellow")]
LINE_STYLES = ["-", "--", "-.", ":"]
#: Fill patterns for bands and bars: with the colours, unique for the first 16 series.
_HATCHES = ["", "//", "\\\\", "xx", "..", "++", "--", "oo", "||", "**", "OO", "///...", "\\\\..", "x..", "|||", "-.."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
CATEGORY_COLORS = {"critical": OKABE_ITO["vermillion"], "warning": OKABE_ITO["orange"],
                   "positive": OKABE_ITO["bluish_green"], "info": OKABE_ITO["blue"]}
STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]
STATUS_COLORS = {"1xx": "#999999", "2xx": OKABE_ITO["bluish_green"], "3xx": OKABE_ITO["sky_blue"],
                 "4xx": OKABE_ITO["orange"], "5xx": OKABE_ITO["vermillion"]}
STATUS_HATCHES = {"1xx": "..", "2xx": "", "3xx": "\\\\", "4xx": "//", "5xx": "xx"}
PERCENTILES = [("p50", "latency_p50_ms", OKABE_ITO["sky_blue"], ""),
               ("p95", "latency_p95_ms", OKABE_ITO["blue"], "//"),
               ("p99", "latency_p99_ms", OKABE_ITO["vermillion"], "xx")]

#: Print resolution and page-width figures.
DPI = 300
WIDTH_IN = 7.5
NO_DATA = "No data in this window"

_RC = {
    "font.size": 8,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "hatch.linewidth": 0.6,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "timezone": "UTC",
    # labels come from the logs (revision names, titles): `$` is a dollar sign, never mathtext
    "text.parse_math": False,
}


def series_style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series: unique for the first 32 series."""
    return {"color": SERIES_COLORS[i % len(SERIES_COLORS)],
            "linestyle": LINE_STYLES[(i // len(SERIES_COLORS)) % len(LINE_STYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def _figure(height: float, width: float = WIDTH_IN) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _styled(fn):
    """Run a chart function under the shared rc settings."""

    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapper


def empty_figure(title: str, message: str = NO_DATA, height: float = 2.0) -> Figure:
    """A titled figure with a centred message, for windows without the data a chart needs."""
    with matplotlib.rc_context(_RC):
        fig = _figure(height)
        ax = fig.add_subplot()
        ax.set_axis_off()
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, color="#555555", transform=ax.transAxes)
        return fig


def save_png(fig: Figure, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write `fig` as an RGB PNG of exactly figsize x `dpi` pixels, with the resolution recorded
    (pHYs) so printing keeps the size; atomically (temporary name, then rename). Returns the path."""
    from PIL import Image as PILImage

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    if fig.dpi != dpi:
        fig.set_dpi(dpi)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    tmp = path.with_name(f".{path.name}.tmp")
    PILImage.fromarray(pixels).save(tmp, format="PNG", dpi=(dpi, dpi), compress_level=6)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ helpers
def _utc_naive(values: Any) -> pd.Series:
    """Timestamps as naive UTC datetime64 (what matplotlib's date axis wants, read as UTC)."""
    s = pd.to_datetime(pd.Series(values), utc=True)
    return s.dt.tz_localize(None)


def _revision_order(frame: pd.DataFrame, revisions: pd.DataFrame | None) -> list[tuple[str, str]]:
    """(service, revision) pairs: in the order of `revisions` (first seen), then any others."""
    order: list[tuple[str, str]] = []
    if revisions is not None and len(revisions):
        order = [(s, r) for s, r in zip(revisions["service"], revisions["revision"], strict=True)]
    if len(frame):
        for s, r in zip(frame["service"], frame["revision"], strict=True):
            if (s, r) not in order:
                order.append((s, r))
    return order


def _label(service: str | None, revision: str | None, many_services: bool) -> str:
    rev = revision_label(revision)
    if not many_services or (plain(service) is not None and rev.startswith(f"{service}-")):
        return rev
    return f"{service_label(service)}/{rev}"


def _time_axis(ax: Any, lo: Any = None, hi: Any = None) -> None:
    locator = mdates.AutoDateLocator(tz=mdates.UTC, minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=mdates.UTC, show_offset=True))
    if lo is not None and hi is not None and lo < hi:
        ax.set_xlim(lo, hi)
    ax.set_xlabel("time (UTC)")


def _deploys(revisions: pd.DataFrame | None, service: str | None = None) -> list[tuple[pd.Timestamp, str]]:
    if revisions is None or not len(revisions) or "deploy_time" not in revisions:
        return []
    rows = revisions if service is None else revisions[revisions["service"] == service]
    out = []
    for t, rev in zip(_utc_naive(rows["deploy_time"]), rows["revision"], strict=True):
        if pd.notna(t):
            out.append((t, str(rev)))
    return sorted(out)


def _mark_deploys(axes: Sequence[Any], deploys: list[tuple[pd.Timestamp, str]], lo: Any, hi: Any) -> int:
    """Dashed vertical lines at each deploy inside [lo, hi], labelled on the first axes: across
    the top for up to three deploys, along the line (rotated) when there are more."""
    inside = [(t, rev) for t, rev in deploys if lo is None or hi is None or lo <= t <= hi]
    upright = len(inside) <= 3
    for shown, (t, rev) in enumerate(inside):
        for ax in axes:
            ax.axvline(t, color=OKABE_ITO["black"], linestyle=(0, (4, 2)), linewidth=1.0, zorder=5)
        box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}
        if upright:
            right = lo is not None and hi is not None and (t - lo) > 0.6 * (hi - lo)
            axes[0].annotate(f"deploy {rev}", xy=(t, 1.0), xycoords=("data", "axes fraction"),
                             xytext=(-3 if right else 3, -4 - 10 * (shown % 3)), textcoords="offset points",
                             fontsize=6.5, ha="right" if right else "left", va="top", zorder=6, bbox=box)
        else:
            axes[0].annotate(f"deploy {rev}", xy=(t, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -3),
                             textcoords="offset points", fontsize=6, rotation=90, ha="left", va="top", zorder=6,
                             bbox=box)
    return len(inside)


def _title_and_legend(fig: Figure, ax: Any, title: str, handles: list, labels: list) -> None:
    """Title top left, legend in a band between it and `ax` (the top axes), never over the data."""
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    if handles:
        ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=min(3, len(labels)),
                  frameon=False, handlelength=2.6, columnspacing=1.4, borderaxespad=0.0)


def _bucket_step(buckets: pd.Series) -> pd.Timedelta:
    values = np.unique(buckets.to_numpy())
    if len(values) < 2:
        return pd.Timedelta(minutes=5)
    return pd.Timedelta(np.min(np.diff(values)))


def _two_lines(revision: str) -> str:
    """`service-00317-696` -> `service` / `00317-696` on two lines (Cloud Run revision names)."""
    parts = str(revision).rsplit("-", 2)
    return f"{parts[0]}\n{parts[1]}-{parts[2]}" if len(parts) == 3 and len(revision) > 18 else str(revision)


def short_time(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


# ------------------------------------------------------------------------------ charts
@_styled
def error_rate_timeline(timeline: pd.DataFrame, revisions: pd.DataFrame | None = None, *,
                        service: str | None = None, title: str | None = None) -> Figure:
    """Error rate (ERROR+ entries as % of entries) per revision over time, deploys marked,
    and below it each revision's share of the service's requests per bucket.

    `timeline` is `Audit.timeline(...)`; `revisions` is `Audit.revisions(...)` (deploy times,
    and the order of the series). `service` keeps one service's rows.
    """
    title = title or ("Error rate and traffic share by revision" + (f": {service}" if service else ""))
    frame = timeline if service is None else timeline[timeline["service"] == service]
    if not len(frame) or int(frame["entries"].sum()) == 0:
        return empty_figure(title)
    frame = frame.copy()
    step = _bucket_step(frame["bucket"])
    frame["t"] = _utc_naive(frame["bucket"]).to_numpy() + step / 2
    lo, hi = frame["t"].min() - step / 2, frame["t"].max() + step / 2
    order = _revision_order(frame, revisions)
    many_services = frame["service"].nunique(dropna=False) > 1

    fig = _figure(4.8)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.4])
    ymax = 0.0
    present = []
    order = [(svc, rev) for svc, rev in order
             if int(frame.loc[(frame["service"] == svc) & (frame["revision"] == rev), "entries"].sum()) > 0]
    for i, (svc, rev) in enumerate(order):
        rows = frame[(frame["service"] == svc) & (frame["revision"] == rev)].sort_values("t")
        rate = np.where(rows["entries"] > 0, 100.0 * rows["errors"] / rows["entries"].where(rows["entries"] > 0, 1), np.nan)
        style = series_style(i)
        top.plot(rows["t"], rate, label=_label(svc, rev, many_services), linewidth=1.3,
                 markersize=2.8 if len(rows) <= 120 else 0, **style)
        ymax = max(ymax, float(np.nanmax(rate)) if np.isfinite(rate).any() else 0.0)
        present.append((i, svc, rev))
    top.set_ylim(0, max(1.0, ymax * 1.25))
    top.yaxis.set_major_formatter(PercentFormatter(decimals=0 if ymax >= 10 else 1))
    top.set_ylabel("ERROR+ entries\n(% of entries)")

    # traffic share: requests of each revision / requests of its service, per bucket
    totals = frame.groupby(["service", "t"])["requests"].transform("sum")
    frame["share"] = np.where(totals > 0, 100.0 * frame["requests"] / totals.where(totals > 0, 1), np.nan)
    if not many_services:
        ts = np.sort(frame["t"].unique())
        stack, colors, labels, hatches = [], [], [], []
        for i, svc, rev in present:
            rows = frame[(frame["service"] == svc) & (frame["revision"] == rev)].set_index("t")["share"]
            stack.append(rows.reindex(ts).fillna(0.0).to_numpy())
            colors.append(series_style(i)["color"])
            labels.append(rev)
            hatches.append(_HATCHES[i % len(_HATCHES)])
        if stack:
            polys = bottom.stackplot(ts, *stack, colors=colors, alpha=0.85, step="mid", linewidth=0)
            for poly, hatch in zip(polys, hatches, strict=True):
                poly.set_hatch(hatch)
                poly.set_edgecolor("white")
    else:
        for i, svc, rev in present:
            rows = frame[(frame["service"] == svc) & (frame["revision"] == rev)].sort_values("t")
            bottom.plot(rows["t"], rows["share"], linewidth=1.1, markersize=2.2, **series_style(i))
    bottom.set_ylim(0, 100)
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    bottom.set_yticks([0, 50, 100])
    bottom.set_ylabel("traffic share\n(% of requests)")
    _time_axis(bottom, lo, hi)
    deploys = _deploys(revisions, service)
    shown = _mark_deploys([top, bottom], deploys, lo, hi)
    handles, labels = top.get_legend_handles_labels()
    if shown:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color=OKABE_ITO["black"], linestyle=(0, (4, 2)), linewidth=1.0))
        labels.append("deploy (audit log)")
    _title_and_legend(fig, top, title, handles, labels)
    return fig


@_styled
def pattern_heatmap(patterns: pd.DataFrame, revisions: pd.DataFrame | None = None, *, max_rows: int = 30,
                    categories: Iterable[str] = CATEGORIES,
                    title: str = "Pattern matches by revision") -> Figure:
    """Matches per pattern (rows, grouped by category) and revision (columns), numbers in the cells.

    `patterns` is `Audit.patterns(...)` (its `by_revision` dicts); `revisions` orders the
    columns by first seen. Rows keep the given order (critical first, then by count); critical
    and warning patterns are kept first when there are more than `max_rows`.
    """
    cats = list(categories)
    rows = patterns[patterns["category"].isin(cats)] if len(patterns) else patterns
    if not len(rows):
        return empty_figure(title)
    rows = rows.assign(_c=rows["category"].map({c: i for i, c in enumerate(cats)})).sort_values(
        ["_c", "count"], ascending=[True, False], kind="stable")
    dropped = max(0, len(rows) - max_rows)
    rows = rows.head(max_rows)
    seen = [r for d in rows["by_revision"] for r in d]
    order = [rev for _, rev in _revision_order(pd.DataFrame(columns=["service", "revision"]), revisions)]
    columns = [r for r in order if r in set(seen)] + sorted({r for r in seen if r not in order})
    matrix = np.array([[float(d.get(c, 0)) for c in columns] for d in rows["by_revision"]])

    height = min(11.0, max(2.6, 1.5 + 0.2 * len(rows) + (0.0 if len(columns) <= 4 else 0.6)))
    fig = _figure(height)
    ax = fig.add_subplot()
    ax.grid(False)
    masked = np.ma.masked_less_equal(matrix, 0)
    vmax = max(1.0, float(matrix.max()))
    image = ax.imshow(masked, aspect="auto", cmap="cividis", norm=LogNorm(vmin=1, vmax=max(vmax, 2.0)),
                      interpolation="nearest")
    ax.set_facecolor("#f4f4f4")
    cmap = image.get_cmap()
    for (y, x), value in np.ndenumerate(matrix):
        if value <= 0:
            ax.text(x, y, "\u00b7", ha="center", va="center", fontsize=6.5, color="#888888")
            continue
        r, g, b, _ = cmap(image.norm(value))
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.55
        ax.text(x, y, f"{int(value):,}", ha="center", va="center", fontsize=6.5,
                color="black" if light else "white")
    ax.set_xticks(range(len(columns)))
    upright = len(columns) <= 4
    ax.set_xticklabels([_two_lines(c) if upright else c for c in columns], rotation=0 if upright else 35,
                       ha="center" if upright else "left", rotation_mode="anchor")
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([short_time(t, 46) for t in rows["title"]])
    for label, cat in zip(ax.get_yticklabels(), rows["category"], strict=True):
        label.set_color(CATEGORY_COLORS.get(cat, "black") if cat != "positive" else "#00684c")
    # category groups: separators and names on the right
    bounds = []
    cats_in_rows = list(rows["category"])
    start = 0
    for i in range(1, len(cats_in_rows) + 1):
        if i == len(cats_in_rows) or cats_in_rows[i] != cats_in_rows[start]:
            bounds.append((start, i - 1, cats_in_rows[start]))
            start = i
    for a, b, cat in bounds:
        if b + 1 < len(rows):
            ax.axhline(b + 0.5, color="black", linewidth=0.8)
        ax.annotate(cat, xy=(1.0, (a + b) / 2), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", rotation=-90, ha="left", va="center", fontsize=7,
                    fontweight="bold", color="black", annotation_clip=False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.06, shrink=0.8)
    bar.set_label("entries (log scale)")
    top_tick = max(vmax, 2.0)
    bar.set_ticks([t for t in (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
                   if t <= top_tick])
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    bar.ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    bar.ax.tick_params(labelsize=6.5)
    suffix = f" (top {max_rows}; {dropped} more not shown)" if dropped else ""
    fig.suptitle(title + suffix, x=0.01, ha="left", fontsize=10, fontweight="bold")
    return fig


@_styled
def status_codes_over_time(status: pd.DataFrame, revisions: pd.DataFrame | None = None, *,
                           service: str | None = None, title: str = "HTTP status codes over time") -> Figure:
    """Requests per status class (stacked bars) per time bucket, and below it the share of
    4xx and 5xx answers; deploys marked.

    `status` has columns `bucket` (UTC), `status_class` ("2xx", ...), `requests` - one row per
    bucket and class (`logaudit.present.report.status_timeline` builds it from `Audit.sql`).
    """
    if not len(status) or int(status["requests"].sum()) == 0:
        return empty_figure(title)
    wide = status.pivot_table(index="bucket", columns="status_class", values="requests", aggfunc="sum", fill_value=0)
    wide.index = _utc_naive(wide.index).to_numpy()
    wide = wide.sort_index()
    classes = [c for c in STATUS_CLASSES if c in wide.columns] + sorted(c for c in wide.columns if c not in STATUS_CLASSES)
    step = _bucket_step(pd.Series(wide.index))
    t = wide.index + step / 2
    lo, hi = wide.index.min(), wide.index.max() + step

    fig = _figure(4.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2.6, 1.4])
    width = step / pd.Timedelta(days=1) * 0.9
    base = np.zeros(len(wide))
    for c in classes:
        values = wide[c].to_numpy(dtype=float)
        top.bar(t, values, width=width, bottom=base, color=STATUS_COLORS.get(c, "#999999"),
                hatch=STATUS_HATCHES.get(c, ""), edgecolor="white", linewidth=0.3, label=c)
        base += values
    top.set_ylabel("requests per bucket")
    total = wide[classes].sum(axis=1).to_numpy(dtype=float)
    for c, marker in (("4xx", "s"), ("5xx", "D")):
        if c in wide.columns:
            share = np.where(total > 0, 100.0 * wide[c].to_numpy(dtype=float) / np.where(total > 0, total, 1), np.nan)
            bottom.plot(t, share, color=STATUS_COLORS[c], marker=marker, markersize=2.5, linewidth=1.1,
                        linestyle="-" if c == "5xx" else "--", label=f"{c} share")
    bottom.set_ylabel("% of requests")
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    bottom.set_ylim(bottom=0)
    _time_axis(bottom, lo, hi)
    _mark_deploys([top, bottom], _deploys(revisions, service), lo, hi)
    handles, labels = top.get_legend_handles_labels()
    more = bottom.get_legend_handles_labels()
    _title_and_legend(fig, top, title + (f": {service}" if service else ""), handles + more[0], labels + more[1])
    return fig


@_styled
def latency_by_revision(revisions: pd.DataFrame, *, title: str = "Request latency percentiles by revision") -> Figure:
    """p50 / p95 / p99 request latency per revision, grouped horizontal bars on a log scale,
    values written at the bar ends. `revisions` is `Audit.revisions(...)`."""
    if not len(revisions):
        return empty_figure(title)
    rows = revisions.reset_index(drop=True)
    many_services = rows["service"].nunique(dropna=False) > 1
    labels = [_label(s, r, many_services) for s, r in zip(rows["service"], rows["revision"], strict=True)]
    values = {key: pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float) for key, col, _, _ in PERCENTILES}
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values.values()])
    if not len(finite):
        return empty_figure(title, "No request latencies in this window")
    height = min(11.0, 1.4 + 0.42 * len(rows))
    fig = _figure(height)
    ax = fig.add_subplot()
    ax.grid(axis="y", visible=False)
    bar_h = 0.26
    lo_v, hi_v = float(finite.min()), float(finite.max())
    left = 10 ** math.floor(math.log10(max(lo_v, 1e-3)))
    for k, (key, _, color, hatch) in enumerate(PERCENTILES):
        y = np.arange(len(rows)) + (k - 1) * bar_h
        v = values[key]
        shown = np.where(np.isfinite(v) & (v > 0), v, np.nan)
        ax.barh(y, shown - left, left=left, height=bar_h * 0.92, color=color, hatch=hatch, edgecolor="white",
                linewidth=0.3, label=key)
        for yy, vv in zip(y, shown, strict=True):
            if np.isfinite(vv):
                ax.text(vv * 1.08, yy, ms(vv), va="center", ha="left", fontsize=6.5)
    for i, v in enumerate(values["p50"]):
        if not np.isfinite(v):
            ax.text(left * 1.1, i, "no requests", va="center", ha="left", fontsize=6.5, color="#555555")
    ax.set_xscale("log")
    ax.set_xlim(left, hi_v * 4)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: ms(x)))
    ax.set_xlabel("latency (log scale; WebSocket upgrades excluded)")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    handles, legend_labels = ax.get_legend_handles_labels()
    _title_and_legend(fig, ax, title, handles, legend_labels)
    return fig


def bucket_for(span: timedelta | None) -> str:
    """A timeline bucket giving 24-96 points over `span` (1m ... 1d)."""
    steps = [("1m", 1), ("2m", 2), ("5m", 5), ("10m", 10), ("15m", 15), ("30m", 30), ("1h", 60), ("2h", 120),
             ("3h", 180), ("6h", 360), ("12h", 720), ("1d", 1440)]
    if span is None or span <= timedelta(0):
        return "5m"
    minutes = span / timedelta(minutes=1)
    for name, m in steps:
        if minutes / m <= 96:
            return name
    return "1d"


__all__ = ["CATEGORY_COLORS", "DPI", "OKABE_ITO", "SERIES_COLORS", "bucket_for", "empty_figure",
           "error_rate_timeline", "latency_by_revision", "pattern_heatmap", "save_png", "series_style",
           "status_codes_over_time"]
