"""One severity table: everything that turns level names into numbers uses sources/severity.py."""

from __future__ import annotations

from logaudit.sources import sample
from logaudit.sources.severity import SEVERITY_ALIASES, SEVERITY_NAME, SEVERITY_NUM
from logaudit.store import normalize


def test_the_table_is_cloud_loggings():
    assert SEVERITY_NUM == {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400,
                            "ERROR": 500, "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800}
    assert {SEVERITY_NAME[n] for n in SEVERITY_NUM.values()} == set(SEVERITY_NUM)
    assert set(SEVERITY_ALIASES.values()) <= set(SEVERITY_NUM)


def test_the_sample_and_the_text_levels_use_it():
    assert sample.SEVERITY_NUM is SEVERITY_NUM
    assert dict(zip(normalize._LEVEL_WORDS, normalize._LEVEL_NUMS, strict=True)) == {
        "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "WARN": 400, "ERROR": 500,
        "CRITICAL": 600, "FATAL": 600}
