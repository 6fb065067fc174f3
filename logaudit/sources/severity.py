"""Cloud Logging's LogSeverity levels by name, and the other spellings logs use for them.

>>> SEVERITY_NUM["WARNING"], SEVERITY_ALIASES["WARN"]
(400, 'WARNING')
"""

from __future__ import annotations

#: Cloud Logging's LogSeverity enum (google/logging/type/log_severity.proto).
SEVERITY_NUM: dict[str, int] = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
SEVERITY_NAME: dict[int, str] = {v: k for k, v in SEVERITY_NUM.items()}
#: Other spellings of the levels, read case-insensitively like the names. These are the
#: translations of Google's logging agent (fluent-plugin-google-cloud: log4j, java.util.logging,
#: nginx, single letters), plus INFORMATIONAL (syslog), VERBOSE (.NET, Android) and PANIC (syslog's
#: old name for EMERG). Digits are the numeric value: truncated to its hundred, above 800 EMERGENCY.
SEVERITY_ALIASES: dict[str, str] = {
    "WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL", "EMERG": "EMERGENCY",
    "PANIC": "EMERGENCY", "SEVERE": "ERROR", "INFORMATION": "INFO", "INFORMATIONAL": "INFO",
    "TRACE": "DEBUG", "TRACE_INT": "DEBUG", "FINE": "DEBUG", "FINER": "DEBUG", "FINEST": "DEBUG",
    "CONFIG": "DEBUG", "VERBOSE": "DEBUG",
    "D": "DEBUG", "I": "INFO", "N": "NOTICE", "W": "WARNING", "E": "ERROR", "C": "CRITICAL", "A": "ALERT",
    "F": "CRITICAL",
}


__all__ = ["SEVERITY_ALIASES", "SEVERITY_NAME", "SEVERITY_NUM"]
