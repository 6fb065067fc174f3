"""Windows that cut hours: the per-hour row slices give the numbers of the rows themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_audit import _direct_summary

from logaudit.analysis import edges
from logaudit.analysis.audit import Audit
from logaudit.analysis.edges import hour_spans
from logaudit.analysis.gate import Gate
from logaudit.analysis.judge import compare
from logaudit.sources.sample import BASELINE_REVISION, CANARY_REVISION, SampleConfig, SampleGenerator
from logaudit.store.store import Store

H = 3_600 * 10**9
# both cut the hours 21:00 and 02:00; the second reuses the slices the first made
WINDOW = {"since": "2025-09-09T21:13:07.25Z", "until": "2025-09-10T02:41:30.5Z"}
SAME_HOURS = {"since": "2025-09-09T21:47:59.999Z", "until": "2025-09-10T02:05:00.001Z"}
INSIDE_AN_HOUR = {"since": "2025-09-09T21:05:00Z", "until": "2025-09-09T21:55:30Z"}


def _hour(text: str) -> str:
    """The name prefix of an hour's slice files: hours since the epoch."""
    return str(int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) // 3600)


def _in(entry: dict, lo: str, hi: str) -> bool:
    return lo <= entry["timestamp"] < hi


@pytest.fixture
def store(tmp_path):
    """The sample in three ingests. The second only has rows from 21:30 to 23:00, so WINDOW holds that
    file whole while the slice of hour 21 holds its rows too: they must not be counted twice."""
    entries = list(SampleGenerator(SampleConfig()))
    s = Store(tmp_path / "store")
    s.ingest_entries([e for k, e in enumerate(entries) if k % 3], "main")
    late = [e for k, e in enumerate(entries) if k % 3 == 0 and _in(e, "2025-09-09T21:30", "2025-09-09T23")]
    s.ingest_entries(late, "late")
    s.ingest_entries([e for k, e in enumerate(entries) if k % 3 == 0 and e not in late], "rest")
    return s


def _ingest_copies(store: Store) -> list[dict]:
    """A new entry file: copies (new insertIds) of the sample's entries from 21:20 to 21:40."""
    extra = [dict(e, insertId=e["insertId"] + "-again") for e in SampleGenerator(SampleConfig())
             if _in(e, "2025-09-09T21:20", "2025-09-09T21:40")]
    store.ingest_entries(extra, "again")
    return extra


def _slices(store: Store) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (store.root / "derived" / "slices").glob("*/*.arrow")}


def _same(store: Store, window: dict) -> dict:
    got = Audit(store).summary(**window)
    want = _direct_summary(Audit(store), **window)
    assert got["entries"] == want["entries"] > 0
    for part in ("revisions", "patterns", "endpoints", "unclassified"):
        assert got[part] == want[part], part
    return got


@pytest.mark.slow
def test_windows_cutting_the_same_hours_reuse_their_slices(store):
    _same(store, WINDOW)
    made = _slices(store)
    assert sorted(name.split("-")[0] for name in made) == [_hour("2025-09-09T21:00")] * 2 + [_hour("2025-09-10T02:00")] * 2
    assert sorted(name.rsplit("-", 1)[1] for name in made) == ["hits.arrow"] * 2 + ["rows.arrow"] * 2
    _same(store, SAME_HOURS)
    assert _slices(store) == made  # read, not written again
    _same(store, INSIDE_AN_HOUR)
    assert _slices(store) == made


@pytest.mark.slow
def test_a_new_entry_file_in_a_cut_hour_makes_a_new_slice(store):
    before = _same(store, WINDOW)["entries"]
    old = set(_slices(store))
    extra = _ingest_copies(store)
    after = _same(store, WINDOW)["entries"]
    assert after == before + len(extra) == before + 211
    new = set(_slices(store)) - old
    assert sorted(name.split("-")[0] for name in new) == [_hour("2025-09-09T21:00")] * 2  # hour 02's files did not change


@pytest.mark.slow
def test_a_damaged_slice_is_rebuilt(store):
    _same(store, WINDOW)
    folder = store.root / "derived" / "slices"
    damaged = sorted(folder.glob(f"*/{_hour('2025-09-09T21:00')}-*-rows.arrow"))[0]
    damaged.write_bytes(b"not arrow")
    _same(store, WINDOW)
    assert damaged.read_bytes()[:6] == b"ARROW1"


@pytest.mark.slow
def test_old_slices_are_pruned(store, monkeypatch):
    monkeypatch.setattr(edges, "KEEP", 4)
    _same(store, WINDOW)
    _same(store, {"since": "2025-09-09T23:30:00Z", "until": "2025-09-10T01:30:00Z"})
    names = sorted(_slices(store))
    assert len(names) == 4 and sorted(n.split("-")[0] for n in names) == [_hour("2025-09-09T23:00")] * 2 + [_hour("2025-09-10T01:00")] * 2


@pytest.mark.slow
@pytest.mark.timezone
def test_compare_over_a_cut_window_counts_the_rows_inside_it(store):
    first = compare(Audit(store), gate=Gate(), **WINDOW).to_dict()
    assert compare(Audit(store), gate=Gate(), **WINDOW).to_dict() == first  # from the slices
    revs = Audit(store).revisions(**WINDOW).set_index("revision")
    for side, rev in (("baseline", BASELINE_REVISION), ("canary", CANARY_REVISION)):
        assert first["windows"][side]["entries"] == revs.loc[rev].entries
        assert first["windows"][side]["requests"] == revs.loc[rev].requests


_NS = st.integers(min_value=0, max_value=50 * H)


@pytest.mark.timezone
@given(since=st.none() | _NS, until=st.none() | _NS)
def test_hour_spans_are_exactly_the_parts_of_the_window_outside_whole_hours(since, until):
    spans = hour_spans(since, until, H)
    for hour, start, end in spans:
        assert hour * H <= start < end <= (hour + 1) * H and (start, end) != (hour * H, (hour + 1) * H)
    if since is None or until is None:
        assert all(since is not None and start == since or until is not None and end == until
                   for _, start, end in spans) and len(spans) <= 1
        return
    if since >= until:
        assert spans == []
        return
    # the spans and the whole hours between them tile [since, until)
    covered = sorted([(s, e) for _, s, e in spans]
                     + [(h * H, (h + 1) * H) for h in range(-(-since // H), until // H)])
    assert covered[0][0] == since and covered[-1][1] == until
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))


@pytest.mark.timezone
def test_hour_spans_of_whole_hours_and_open_windows():
    assert hour_spans(None, None, H) == []
    assert hour_spans(H, 2 * H, H) == []


@pytest.mark.slow
def test_a_slice_damaged_inside_its_data_is_rebuilt(store):
    import pyarrow as pa
    import pyarrow.feather as feather

    _same(store, WINDOW)
    folder = store.root / "derived" / "slices"
    path = sorted(folder.glob(f"*/{_hour('2025-09-09T21:00')}-*-rows.arrow"))[0]
    rows = feather.read_table(path)
    files = rows["file"].combine_chunks()
    bad = pa.DictionaryArray.from_arrays(pa.array([99] * len(files), pa.int32()), files.dictionary, safe=False)
    feather.write_feather(rows.set_column(0, "file", bad), path, compression="uncompressed")  # header intact
    _same(store, WINDOW)
    feather.read_table(path).validate(full=True)


@pytest.mark.slow
def test_one_audit_sees_what_is_ingested_after_it_was_opened(store):
    audit = Audit(store)
    before = audit.summary(**WINDOW)
    _ingest_copies(store)
    after = audit.summary(**WINDOW)  # the same Audit: its views and the cut hour's slice are made again
    want = _direct_summary(Audit(store), **WINDOW)
    assert after["entries"] == before["entries"] + 211 == want["entries"]
    for part in ("revisions", "patterns", "endpoints", "unclassified"):
        assert after[part] == want[part], part
    assert sum(p["count"] for p in after["patterns"]) > sum(p["count"] for p in before["patterns"])


@pytest.mark.slow
def test_a_slice_made_before_a_file_was_classified_is_not_reused(store):
    from logaudit.analysis.observe import FileAggregates
    from logaudit.analysis.window import Window, resolve_window

    audit = Audit(store)
    w0 = resolve_window(WINDOW["since"], WINDOW["until"])
    w = Window(w0.since, w0.until)
    con = audit.connection(w)
    _ingest_copies(store)  # e.g. a pull running meanwhile: not classified on `con`
    FileAggregates(audit, con, w, 400).close()  # makes the slices with the new file unclassified
    _same(store, WINDOW)  # classifies it: the slices of its hour are made again
