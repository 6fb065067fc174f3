"""Charts: every chart function on empty, single-revision and many-revision data from `Audit`,
drawn with the Agg canvas, Okabe-Ito colours, UTC axes, written as print-resolution PNGs."""

from __future__ import annotations

import copy
import json
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from logaudit.analysis.audit import Audit
from logaudit.present import charts
from logaudit.present.display import ms as _ms
from logaudit.present.report import status_timeline
from logaudit.sources.bundled import sample_path
from logaudit.store.store import Store

pytestmark = pytest.mark.timezone  # times must be UTC in any local zone (tests/test_timezones.py)

FIXTURES = Path(__file__).parents[1] / "fixtures"
SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"
FLEET = "fleet"
FLEET_REVISIONS = [f"{FLEET}-{k:05d}-r{k:02d}" for k in range(1, 13)]
FLEET_START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PALETTE = set(charts.OKABE_ITO.values())


# ------------------------------------------------------------------------------ PNG checks
def png_info(path: Path) -> dict:
    """Width, height, dpi and colour type of a PNG, after checking its signature and every chunk CRC."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.setdefault(kind, body)
        pos += 12 + length
        if kind == b"IEND":
            break
    assert pos == len(data), f"{path}: bytes after IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    ppm_x, ppm_y, unit = struct.unpack(">IIB", chunks[b"pHYs"])
    assert unit == 1
    return {"width": width, "height": height, "depth": depth, "colour": colour, "dpi": round(ppm_x * 0.0254),
            "dpi_y": round(ppm_y * 0.0254), "bytes": len(data)}


def assert_print_png(path: Path, fig_size: tuple[float, float] | None = None) -> dict:
    """A valid PNG at 300 dpi, page width (7.5 in = 2250 px), of a sensible size."""
    info = png_info(path)
    assert (info["dpi"], info["dpi_y"]) == (300, 300)
    assert info["width"] == 2250
    assert 300 <= info["height"] <= 3300
    assert 5_000 < info["bytes"] < 3_000_000
    assert (info["depth"], info["colour"]) == (8, 2)  # 8-bit RGB
    if fig_size is not None:
        assert (info["width"], info["height"]) == (round(fig_size[0] * 300), round(fig_size[1] * 300))
    return info


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def deploy_labels(fig) -> list[str]:
    """The deploy annotations (on the top axes)."""
    return [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("deploy ")]


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def sample_audit(tmp_path_factory) -> Audit:
    store = Store(tmp_path_factory.mktemp("charts") / "store")
    store.ingest_paths([sample_path()])
    return Audit(store)


def fleet_entries() -> list[dict]:
    """One service deployed 12 times, 20 minutes apart: a deploy audit entry, then requests
    (more 5xx and slower in later revisions) and one traceback per revision."""
    deploy = next(e for e in json.loads((FIXTURES / "logentry-samples.json").read_text())
                  if e.get("protoPayload", {}).get("methodName", "").endswith("ReplaceService"))
    deploy = {k: v for k, v in deploy.items() if k != "_comment"}
    out = []

    def ts(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    labels = lambda rev: {"project_id": "p", "service_name": FLEET, "revision_name": rev,  # noqa: E731
                          "configuration_name": FLEET, "location": "europe-west1"}
    for k, rev in enumerate(FLEET_REVISIONS):
        t0 = FLEET_START + timedelta(minutes=20 * k)
        d = copy.deepcopy(deploy)
        d["resource"]["labels"]["service_name"] = FLEET
        d["timestamp"], d["insertId"] = ts(t0), f"deploy-{k}"
        d["protoPayload"]["response"]["status"]["latestCreatedRevisionName"] = rev
        out.append(d)
        for i in range(20):
            status = 500 if i < k % 4 else 404 if i % 7 == 3 else 200
            out.append({"logName": "projects/p/logs/run.googleapis.com%2Frequests", "resource": {"type": "cloud_run_revision", "labels": labels(rev)},
                        "timestamp": ts(t0 + timedelta(seconds=30 + 55 * i)), "insertId": f"r-{k}-{i}",
                        "severity": "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO",
                        "httpRequest": {"requestMethod": "GET", "requestUrl": f"https://fleet.run.app/api/items/{i}",
                                        "status": status, "latency": f"{0.005 * (k + 1) * (1 + i % 5):.6f}s"}})
        out.append({"logName": "projects/p/logs/run.googleapis.com%2Fstderr", "resource": {"type": "cloud_run_revision", "labels": labels(rev)},
                    "timestamp": ts(t0 + timedelta(minutes=5)), "insertId": f"tb-{k}", "severity": "ERROR",
                    "textPayload": "Traceback (most recent call last):\n  File \"app.py\", line 1\nValueError: boom"})
    return out


@pytest.fixture(scope="module")
def fleet_audit(tmp_path_factory) -> Audit:
    store = Store(tmp_path_factory.mktemp("fleet") / "store")
    report = store.ingest_entries(fleet_entries(), "fleet")
    assert report.rejected == 0 and report.new_rows == 12 * 22
    return Audit(store)


@pytest.fixture(scope="module")
def fleet(fleet_audit):
    w = {"since": FLEET_START, "until": FLEET_START + timedelta(hours=4)}
    from logaudit.analysis.window import Window

    return {"revisions": fleet_audit.revisions(**w), "timeline": fleet_audit.timeline("10m", **w),
            "patterns": fleet_audit.patterns(**w),
            "status": status_timeline(fleet_audit, Window(w["since"], w["until"]), "10m")}


# ------------------------------------------------------------------------------ empty
@pytest.mark.slow
def test_every_chart_draws_an_empty_window(sample_audit, tmp_path):
    empty = {"since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"}
    from logaudit.analysis.window import resolve_window

    revisions = sample_audit.revisions(**empty)
    frames = {
        "timeline": charts.error_rate_timeline(sample_audit.timeline("1h", **empty), revisions),
        "heatmap": charts.pattern_heatmap(sample_audit.patterns(**empty), revisions),
        "status": charts.status_codes_over_time(status_timeline(sample_audit, resolve_window(**empty), "1h"), revisions),
        "latency": charts.latency_by_revision(revisions),
    }
    assert revisions.empty
    for name, fig in frames.items():
        assert charts.NO_DATA in texts(fig), name
        info = assert_print_png(charts.save_png(fig, tmp_path / f"{name}.png"), (7.5, 2.0))
        assert info["height"] == 600


def test_latency_without_requests_says_so(fleet):
    revs = fleet["revisions"].copy()
    revs[["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]] = np.nan
    assert "No request latencies in this window" in texts(charts.latency_by_revision(revs))


# ------------------------------------------------------------------------------ single revision
@pytest.mark.slow
def test_single_revision(sample_audit, tmp_path):
    service = "netra-auth-service"
    w = {"since": SINCE, "until": UNTIL, "service": service}
    revisions = sample_audit.revisions(**w)
    assert revisions.revision.tolist() == ["netra-auth-service-00042-k9p"]
    fig = charts.error_rate_timeline(sample_audit.timeline("15m", **w), revisions, service=service)
    top, bottom = fig.axes
    assert [line.get_label() for line in top.get_lines()] == ["netra-auth-service-00042-k9p"]
    assert top.get_legend().get_texts()[0].get_text() == "netra-auth-service-00042-k9p"
    assert len(bottom.collections) == 1  # one traffic-share band, 100 %
    assert not deploy_labels(fig)  # no deploy of this revision in the logs
    assert_print_png(charts.save_png(fig, tmp_path / "timeline.png"), (7.5, 4.8))

    heat = charts.pattern_heatmap(sample_audit.patterns(**w), revisions)
    ax = heat.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["netra-auth-service\n00042-k9p"]
    patterns = sample_audit.patterns(**w)
    assert [t.get_text() for t in ax.get_yticklabels()] == patterns.title.tolist()
    cells = sorted(t.get_text() for t in ax.texts if t.get_text().replace(",", "").isdigit())
    assert cells == sorted(f"{n:,}" for n in patterns["count"])
    assert_print_png(charts.save_png(heat, tmp_path / "heat.png"))

    lat = charts.latency_by_revision(revisions)
    r = revisions.iloc[0]
    labels = {t.get_text() for t in lat.axes[0].texts}
    assert {_ms(r.latency_p50_ms), _ms(r.latency_p95_ms), _ms(r.latency_p99_ms)} <= labels
    assert_print_png(charts.save_png(lat, tmp_path / "lat.png"))


@pytest.mark.slow
def test_status_bars_add_up_to_the_requests(sample_audit, tmp_path):
    from logaudit.analysis.window import resolve_window

    w = resolve_window(SINCE, UNTIL, "netra-backend-staging")
    status = status_timeline(sample_audit, w, "15m")
    revisions = sample_audit.revisions(since=w)
    fig = charts.status_codes_over_time(status, revisions, service=w.service)
    heights = sum(p.get_height() for p in fig.axes[0].patches)
    assert heights == revisions.requests.sum() == status.requests.sum()
    assert sorted(status.status_class.unique()) == ["1xx", "2xx", "4xx", "5xx"]
    assert deploy_labels(fig) == ["deploy netra-backend-staging-00317-696"]
    assert_print_png(charts.save_png(fig, tmp_path / "status.png"), (7.5, 4.4))


# ------------------------------------------------------------------------------ many revisions
@pytest.mark.slow
def test_many_revisions_timeline(fleet, tmp_path):
    fig = charts.error_rate_timeline(fleet["timeline"], fleet["revisions"], service=FLEET)
    top, bottom = fig.axes
    lines = [line for line in top.get_lines() if line.get_label() in FLEET_REVISIONS]
    assert [line.get_label() for line in lines] == FLEET_REVISIONS
    styles = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(styles) == 12  # colour, then line style / marker tell the 9th+ series apart
    assert {line.get_color() for line in lines} <= PALETTE
    assert deploy_labels(fig) == [f"deploy {r}" for r in FLEET_REVISIONS]
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend == [*FLEET_REVISIONS, "deploy (audit log)"]
    assert len(bottom.collections) == 12  # stacked traffic-share bands
    # error rate of revision k in its active bucket equals errors / entries of the timeline
    tl = fleet["timeline"]
    first = tl[(tl.revision == FLEET_REVISIONS[3]) & (tl.entries > 0)].iloc[0]
    y = lines[3].get_ydata()
    assert np.nanmax(y[np.isfinite(y)]) >= 100 * first.errors / first.entries - 1e-9
    assert_print_png(charts.save_png(fig, tmp_path / "fleet-timeline.png"), (7.5, 4.8))


@pytest.mark.slow
def test_many_revisions_heatmap_status_latency(fleet, tmp_path):
    heat = charts.pattern_heatmap(fleet["patterns"], fleet["revisions"])
    ax = heat.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == FLEET_REVISIONS  # rotated, one line each
    tb = fleet["patterns"].set_index("id").loc["python-traceback"]
    assert tb.by_revision == dict.fromkeys(FLEET_REVISIONS, 1)
    image = ax.images[0].get_array()
    assert image.shape[1] == 12
    assert_print_png(charts.save_png(heat, tmp_path / "fleet-heat.png"))

    status = charts.status_codes_over_time(fleet["status"], fleet["revisions"], service=FLEET)
    assert sum(p.get_height() for p in status.axes[0].patches) == 12 * 20
    assert len(deploy_labels(status)) == 12
    assert_print_png(charts.save_png(status, tmp_path / "fleet-status.png"))

    lat = charts.latency_by_revision(fleet["revisions"])
    ax = lat.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == FLEET_REVISIONS
    bars = [p for p in ax.patches]
    assert len(bars) == 3 * 12
    left = bars[0].get_x()
    p99 = [b.get_x() + b.get_width() for b in bars[24:]]
    assert p99 == pytest.approx(fleet["revisions"].latency_p99_ms.tolist())
    assert left > 0 and ax.get_xscale() == "log"
    info = assert_print_png(charts.save_png(lat, tmp_path / "fleet-lat.png"))
    assert info["height"] == round(min(11.0, 1.4 + 0.42 * 12) * 300)


# ------------------------------------------------------------------------------ conventions
@pytest.mark.slow
def test_axes_are_utc_whatever_the_local_zone(sample_audit, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        w = {"since": SINCE, "until": UNTIL, "service": "netra-backend-staging"}
        fig = charts.error_rate_timeline(sample_audit.timeline("30m", **w), sample_audit.revisions(**w),
                                         service=w["service"])
        FigureCanvasAgg(fig).draw()
        bottom = fig.axes[1]
        assert bottom.get_xlabel() == "time (UTC)"
        ticks = [t.get_text() for t in bottom.get_xticklabels()]
        assert ticks[0] == "20:00" and "Sep-10" in ticks  # 20:00 UTC, not 01:30 IST
        lo, _ = bottom.get_xlim()
        from matplotlib.dates import num2date

        assert num2date(lo).replace(tzinfo=UTC) == datetime(2025, 9, 9, 20, 0, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_figures_use_the_agg_canvas_and_the_palette(fleet):
    fig = charts.error_rate_timeline(fleet["timeline"], fleet["revisions"])
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert charts.SERIES_COLORS[:7] == ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000"]
    assert set(charts.SERIES_COLORS) == PALETTE
    assert set(charts.STATUS_COLORS.values()) - {"#999999"} <= PALETTE
    assert len({tuple(charts.series_style(i).values()) for i in range(32)}) == 32


@pytest.mark.parametrize(("span", "bucket"), [(None, "5m"), (timedelta(minutes=30), "1m"), (timedelta(hours=6), "5m"),
                                              (timedelta(hours=8), "5m"), (timedelta(hours=24), "15m"),
                                              (timedelta(days=7), "2h"), (timedelta(days=400), "1d")])
def test_bucket_for(span, bucket):
    assert charts.bucket_for(span) == bucket
