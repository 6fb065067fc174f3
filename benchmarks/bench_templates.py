"""Benchmark: how well messages are grouped into templates, against known truth, and how fast.

    python benchmarks/bench_templates.py                  # all parts below
    python benchmarks/bench_templates.py --messages 50000 --seeds 3 --speed 100000
    python benchmarks/bench_templates.py --loghub DIR     # Loghub-2k elsewhere (or $LOGAUDIT_LOGHUB)

1. **Generated corpus.** A person groups log lines by what they say: the same message with
   another id, user, host, duration or quoted value is one group; messages that say different
   things ("connect to redis" / "connect to postgres", "login failed: invalid password" / "login
   failed: account locked") are two. This script generates realistic WARNING/ERROR lines from 50
   message families written the way Cloud Run services log (UUIDs, hex and base62 ids, pod names,
   IPs, emails, durations, quoted values, logfmt key=value, URLs, user/tenant/region/model names,
   JSON fragments, timestamps in several styles), including families that differ in one word and
   must stay apart, with the family as the truth, then scores each method:

   * **exact**: one group per distinct message (what `GROUP BY message` does);
   * **masks v0**: the masks logaudit shipped first (timestamps, quotes, UUIDs, emails, IPs, hex,
     numbers);
   * **logaudit masks**: `logaudit.analysis.templates.template` (the masks above plus logfmt values and
     mixed letter/digit tokens), the same in SQL (`template_sql`);
   * **logaudit masks + grouping**: what summarize, compare and the report do: the first-stage
     masks (kept per entry file), then `group_templates` over the distinct masked templates
     (`logaudit.analysis.aggregates.grouping`);
   * **logaudit group_templates**: `logaudit.group_templates`, the one grouping (masks, a
     Drain-like tree over words, words that vary split or masked by the values they take);
   * **drain3** (when installed: `pip install -e '.[bench]'`): the Drain log-template miner with
     its default settings (similarity 0.4, depth 4) after the `template` masks.

   Scores (pairs of messages, over all messages): adjusted Rand index (1 = the truth's partition,
   ~0 = chance), pairwise precision (pairs grouped together that belong together) and recall
   (pairs that belong together and were grouped), their F1, and the number of groups. Also
   checked: the SQL masks (`template_sql`, `mask_sql`) give exactly the Python masks' output on
   every message.

2. **Held out**: lines this benchmark did not write: the unclassified WARNING and ERROR lines of
   `logaudit.sample`'s generator, with the generator's event kind (and logger) as truth.

3. **Loghub-2k** (public, labelled; read from `--loghub`, `$LOGAUDIT_LOGHUB`, or
   `../shared/benchmarks/loghub-2k` next to the repository; never copied into it): 8 systems' logs,
   2,000 lines each, with the labelled template as truth. Grouping accuracy (GA, Zhu et al., ICSE-
   SEIP 2019): a message counts as correct when its group holds exactly the messages of its true
   group. `group_templates` and drain3 (default settings, on the raw message, and after `mask`) in
   the same run, with the time each takes. Datasets: Loghub (https://github.com/logpai/loghub),
   Zhu et al., ISSRE 2023.

4. **Speed**: `--speed` distinct messages of the generated corpus, grouped by `group_templates`
   and by drain3 (default settings; on the messages, and after `mask`) in the same run, in CPU
   seconds of this process (one core); the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logaudit.analysis.aggregates import grouping  # noqa: E402
from logaudit.analysis.templates import (  # noqa: E402
    group_templates,
    mask,
    mask_sql,
    template,
    template_sql,
)

LOGHUB = ["HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Apache", "OpenSSH"]
#: Drain's GA on these 8 as published (logparser's Drain README, original labels, per-dataset settings).
DRAIN_PUBLISHED = {"HDFS": 0.9975, "Hadoop": 0.9475, "Spark": 0.92, "Zookeeper": 0.9665, "BGL": 0.9625, "HPC": 0.887,
                   "Apache": 1.0, "OpenSSH": 0.7875}

# The masks logaudit shipped first, kept here as the reference point.
MASKS_V0: list[tuple[str, str]] = [
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?", "<*>"),
    (r"'[^']*'", "'<*>'"),
    (r'"[^"]*"', '"<*>"'),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<*>"),
    (r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b", "<*>"),
    (r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b", "<*>"),
    (r"\b(?:0x)?[0-9a-fA-F]{8,}\b", "<*>"),
    (r"([_-])[0-9a-fA-F]{6,}\b", r"\1<*>"),
    (r"\b\d+(?:\.\d+)?", "<*>"),
]

# ------------------------------------------------------------------------------------ corpus
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
         "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda", "zoe", "quentin", "maria",
         "liam", "noah", "emma", "ava", "sophia", "mia", "lucas", "amelia", "ethan", "harper", "mason", "ella"]
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne",
           "soylent", "aperture", "vandelay", "pied-piper", "dunder-mifflin", "oscorp", "gringotts", "monarch"]
REGIONS = ["us-central1", "us-east1", "us-west1", "europe-west1", "europe-west4", "asia-east1", "asia-northeast1",
           "australia-southeast1", "southamerica-east1", "northamerica-northeast1"]
MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b",
          "mistral-large", "command-r"]
QUEUES = ["email-outbound", "billing-events", "audit-log", "thumbnails", "search-index", "webhooks", "exports",
          "notifications", "reports", "ingest-raw", "ingest-enriched", "dead-letter"]
TABLES = ["users", "threads", "messages", "agents", "runs", "tenants", "api_keys", "sessions", "invoices"]
FIELDS = ["email", "name", "phone", "thread_id", "role", "locale", "timezone", "plan", "org_id"]
B62 = string.ascii_letters + string.digits


class _R:
    """Variable-part generators on one random stream."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def uuid(self) -> str:
        h = f"{self.r.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def hex(self, n: int) -> str:
        return f"{self.r.getrandbits(4 * n):0{n}x}"

    def b62(self, n: int) -> str:
        return "".join(self.r.choice(B62) for _ in range(n))

    def ip(self) -> str:
        r = self.r
        return f"10.{r.randrange(0, 255)}.{r.randrange(0, 255)}.{r.randrange(1, 255)}"

    def pod(self, name: str) -> str:
        return f"{name}-{self.hex(9)[:9]}-{''.join(self.r.choice(string.ascii_lowercase + string.digits) for _ in range(5))}"

    def ms(self) -> int:
        return int(self.r.lognormvariate(5, 1.2))

    def ts(self) -> str:
        r = self.r
        return (f"2025-09-{r.randrange(1, 29):02d}T{r.randrange(0, 24):02d}:{r.randrange(0, 60):02d}:"
                f"{r.randrange(0, 60):02d}.{r.randrange(0, 1000):03d}Z")

    def pick(self, seq: list[str]) -> str:
        return self.r.choice(seq)

    def n(self, lo: int, hi: int) -> int:
        return self.r.randrange(lo, hi)


def families() -> list[tuple[str, Callable[[_R], str]]]:
    """(family name, message builder): each family is one group for a person."""
    F: list[tuple[str, Callable[[_R], str]]] = [
        # ids of every kind
        ("thread-not-found", lambda g: f"Thread {g.uuid()} not found for user {g.uuid()}"),
        ("cache-miss", lambda g: f"Cache miss for key user:{g.n(1, 99999)}:profile after {g.n(1, 300)}ms"),
        ("redis-retry", lambda g: f"Retrying Redis connection to {g.ip()}:6379 (attempt {g.n(1, 6)})"),
        ("rate-limiter", lambda g: f"Rate limiter fallback engaged for tenant {g.hex(16)} (limit {g.n(1, 13) * 10}/min)"),
        ("req-timeout", lambda g: f"Request req_{g.b62(12)} timed out after {g.n(1, 60)}s"),
        ("pod-evicted", lambda g: f"Pod {g.pod('worker')} evicted: node {g.pod('gke-pool')} under memory pressure"),
        ("trace-error", lambda g: f"Span {g.hex(16)} in trace {g.hex(32)} ended with status ERROR"),
        ("email-bounce", lambda g: f"Email to {g.pick(NAMES)}.{g.pick(NAMES)}@example.com bounced: mailbox full"),
        ("slow-query", lambda g: f"Slow query on table {g.pick(TABLES)} took {g.ms()} ms (rows={g.n(1, 100000)})"),
        ("token-expired", lambda g: f"Token for session sess_{g.b62(20)} expired at {g.ts()}"),
        ("quoted-value", lambda g: f"Invalid value '{g.b62(g.n(3, 10))}' for field '{g.pick(FIELDS)}'"),
        ("dq-value", lambda g: f'Unknown agent "{g.b62(g.n(4, 9))}" requested by run {g.hex(12)}'),
        ("upload-failed", lambda g: f"Upload of gs://netra-uploads/{g.uuid()}/{g.b62(8)}.pdf failed with 503"),
        ("webhook-retry", lambda g: f"Webhook delivery to https://hooks.example.com/{g.b62(10)}?sig={g.hex(40)} failed, retry {g.n(1, 9)}/8"),
        ("ipv6-reject", lambda g: f"Rejected connection from 2600:1700:{g.hex(4)}:{g.hex(4)}::{g.hex(3)} (blocked range)"),
        ("duration", lambda g: f"Job export-{g.n(1000, 99999)} ran for {g.n(1, 59)}m{g.n(1, 59)}s, over budget"),
        ("disk-usage", lambda g: f"Disk usage at {g.n(85, 100)}% on volume pvc-{g.uuid()}"),
        ("pid-exit", lambda g: f"[{g.ts().replace('T', ' ')[:19]} +0000] [{g.n(7, 40)}] [ERROR] Worker (pid:{g.n(7, 40)}) exited with code {g.n(1, 4)}"),
        ("pylog-pool", lambda g: f"{g.ts()[:10]} {g.ts()[11:19]},{g.n(0, 999):03d} - app.db.pool - WARNING - Connection pool at {g.n(75, 99)}% capacity ({g.n(10, 30)}/30 in use)"),
        ("version-mismatch", lambda g: f"Client v{g.n(1, 4)}.{g.n(0, 20)}.{g.n(0, 9)} is older than minimum supported version, request {g.uuid()}"),
        # logfmt
        ("logfmt-auth", lambda g: f"auth failed user={g.pick(NAMES)} ip={g.ip()} reason=bad_password attempt={g.n(1, 5)}"),
        ("logfmt-quota", lambda g: f"quota exceeded tenant={g.pick(TENANTS)} used={g.n(1000, 9999)} limit=1000"),
        # word-valued variables: names, tenants, regions, models, queues
        ("login-locked", lambda g: f"Login failed for user {g.pick(NAMES)}: account locked"),
        ("login-password", lambda g: f"Login failed for user {g.pick(NAMES)}: invalid password"),
        ("tenant-suspended", lambda g: f"Tenant {g.pick(TENANTS)} is suspended, rejecting request"),
        ("region-unavailable", lambda g: f"Region {g.pick(REGIONS)} unavailable, failing over"),
        ("model-overloaded", lambda g: f"Model {g.pick(MODELS)} overloaded, queueing request for {g.n(1, 30)}s"),
        ("queue-backlog", lambda g: f"Queue {g.pick(QUEUES)} backlog is {g.n(1000, 90000)} messages"),
        ("user-quota", lambda g: f"User {g.pick(NAMES)} exceeded daily quota"),
        # near-duplicates: one word apart, different meaning (must stay apart)
        ("connect-redis", lambda g: f"Failed to connect to redis at {g.ip()}:6379"),
        ("connect-postgres", lambda g: f"Failed to connect to postgres at {g.ip()}:5432"),
        ("cache-hit-slow", lambda g: f"Cache hit for key user:{g.n(1, 99999)}:profile but took {g.n(100, 900)}ms"),
        ("payments-timeout", lambda g: f"Timeout while calling payments-service after {g.n(1, 30)}s"),
        ("inventory-timeout", lambda g: f"Timeout while calling inventory-service after {g.n(1, 30)}s"),
        ("write-failed", lambda g: f"Write to table {g.pick(TABLES)} failed: deadlock detected"),
        ("read-failed", lambda g: f"Read from table {g.pick(TABLES)} failed: deadlock detected"),
        ("ws-closed-client", lambda g: f"WebSocket ws_conn_{g.hex(12)} closed by client (code 1000)"),
        ("ws-closed-server", lambda g: f"WebSocket ws_conn_{g.hex(12)} closed by server (code 1011)"),
        ("retry-job", lambda g: f"Retry {g.n(1, 5)}/5 for job {g.uuid()}"),
        ("giveup-job", lambda g: f"Giving up on job {g.uuid()} after 5 retries"),
        ("config-missing", lambda g: "Missing configuration value: OPENAI_API_KEY"),
        ("config-missing-db", lambda g: "Missing configuration value: DATABASE_URL"),
        ("cert-expiring", lambda g: f"TLS certificate for api.netrasystems.ai expires in {g.n(1, 14)} days"),
        ("cert-expiring-auth", lambda g: f"TLS certificate for auth.netrasystems.ai expires in {g.n(1, 14)} days"),
        # constant lines
        ("startup-bypass", lambda g: "BYPASSING STARTUP VALIDATION FOR STAGING - 1 critical failures ignored"),
        ("demo-mode", lambda g: "DEMO MODE: Authentication bypass enabled for isolated demo environment (DEFAULT)"),
        ("deprecated", lambda g: "DeprecationWarning: datetime.datetime.utcnow() is deprecated"),
        # multi-variable
        ("llm-slow", lambda g: f"LLM call to {g.pick(MODELS)} for run run_{g.hex(12)} took {g.ms() * 10} ms, above the 5000 ms budget"),
        ("agent-failed", lambda g: f"Agent {g.pick(['triage', 'supervisor', 'data_helper', 'reporting'])} failed on thread thread_{g.hex(16)}: upstream timeout after {g.n(30, 120)}s"),
        ("json-error", lambda g: f'Upstream error: {{"code": {g.pick(["429", "500", "503"])}, "request_id": "{g.b62(16)}", "retry_after": {g.n(1, 60)}}}'),
    ]
    return F


def corpus(n: int, seed: int) -> list[tuple[str, str]]:
    """n (message, family) pairs; family frequencies follow a Zipf law (rank order shuffled per seed)."""
    fams = families()
    g = _R(seed)
    order = list(range(len(fams)))
    random.Random(seed + 1).shuffle(order)
    weights = np.array([1.0 / (1 + rank) ** 0.9 for rank in range(len(fams))])
    weights = weights / weights.sum()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(fams), size=n, p=weights)
    out = []
    for p in picks:
        name, build = fams[order[p]]
        out.append((build(g), name))
    return out


# ------------------------------------------------------------------------------------ scores
def _comb2(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(np.sum(x * (x - 1) / 2))


def scores(truth: list[str], groups: list[str]) -> dict[str, float]:
    """Adjusted Rand index, pairwise precision / recall / F1, number of groups."""
    t_ids = {t: i for i, t in enumerate(dict.fromkeys(truth))}
    g_ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    pairs = Counter((t_ids[t], g_ids[g]) for t, g in zip(truth, groups, strict=True))
    n = len(truth)
    nij = np.array(list(pairs.values()))
    a = np.bincount([t_ids[t] for t in truth], minlength=len(t_ids))
    b = np.bincount([g_ids[g] for g in groups], minlength=len(g_ids))
    same_both, same_truth, same_group = _comb2(nij), _comb2(a), _comb2(b)
    total = n * (n - 1) / 2
    expected = same_truth * same_group / total if total else 0.0
    max_index = (same_truth + same_group) / 2
    ari = (same_both - expected) / (max_index - expected) if max_index != expected else 1.0
    precision = same_both / same_group if same_group else 1.0
    recall = same_both / same_truth if same_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"ari": ari, "precision": precision, "recall": recall, "f1": f1, "groups": float(len(g_ids))}


# ------------------------------------------------------------------------------------ methods
def _apply(masks: list[tuple[str, str]], text: str) -> str:
    import re

    for p, r in masks:
        text = re.sub(p, r, text)
    return text


def method_exact(msgs: list[str]) -> list[str]:
    return list(msgs)


def method_v0(msgs: list[str]) -> list[str]:
    return [_apply(MASKS_V0, m) for m in msgs]


def method_masks(msgs: list[str]) -> list[str]:
    return [template(m) for m in msgs]


def method_masks_grouped(msgs: list[str]) -> list[str]:
    t = [template(m) for m in msgs]
    mapping = grouping(t)
    return [mapping[x] for x in t]


def method_group(msgs: list[str]) -> list[str]:
    return group_templates(msgs)


def drain3_groups(msgs: list[str]) -> list[str] | None:
    """drain3's cluster per message, default settings (None when drain3 is not installed)."""
    try:
        from drain3 import TemplateMiner
        from drain3.template_miner_config import TemplateMinerConfig
    except ImportError:
        return None
    import logging

    logging.getLogger("drain3").setLevel(logging.ERROR)
    cfg = TemplateMinerConfig()
    cfg.profiling_enabled = False
    miner = TemplateMiner(config=cfg)
    return [str(miner.add_log_message(m)["cluster_id"]) for m in msgs]


def method_drain(msgs: list[str]) -> list[str] | None:
    return drain3_groups([template(m) for m in msgs])


METHODS: list[tuple[str, Callable[[list[str]], list[str] | None]]] = [
    ("exact", method_exact),
    ("masks v0", method_v0),
    ("logaudit masks", method_masks),
    ("logaudit masks + grouping", method_masks_grouped),
    ("logaudit group_templates", method_group),
    ("drain3 (after masks)", method_drain),
]


def sql_matches_python(msgs: list[str]) -> int:
    """How many messages the SQL masks (`template_sql`, `mask_sql`) give otherwise than Python (must be 0)."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register("t", pa.table({"m": pa.array(msgs, pa.string())}))
    rows = con.execute(f"SELECT {template_sql('m')}, {mask_sql('m')} FROM t").fetchall()
    return sum((a != template(m)) + (b != mask(m)) for (a, b), m in zip(rows, msgs, strict=True))


# ------------------------------------------------------------------------------------ Loghub
def default_loghub() -> Path:
    return Path(os.environ.get("LOGAUDIT_LOGHUB") or ROOT.parent / "shared" / "benchmarks" / "loghub-2k")


def load_loghub(folder: Path, name: str) -> tuple[list[str], list[str]]:
    """(messages, labelled templates) of one Loghub-2k dataset."""
    with open(folder / f"{name}_2k.log_structured_corrected.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]


def grouping_accuracy(truth: list[str], groups: list[str]) -> float:
    """GA: the share of messages whose group holds exactly the messages of their true group."""
    size = Counter(truth)
    members: dict[str, list[str]] = {}
    for t, g in zip(truth, groups, strict=True):
        members.setdefault(g, []).append(t)
    ok = sum(len(ts) for ts in members.values() if len(set(ts)) == 1 and size[ts[0]] == len(ts))
    return ok / len(truth)


def loghub_table(folder: Path) -> list[dict[str, float | str]]:
    """GA and seconds per dataset for group_templates and drain3 (raw, and after `mask`), one run."""
    rows = []
    for name in LOGHUB:
        msgs, truth = load_loghub(folder, name)
        row: dict[str, float | str] = {"dataset": name, "truth": len(set(truth))}
        for key, fn in (("logaudit", group_templates), ("drain3", drain3_groups),
                        ("drain3_mask", lambda ms: drain3_groups([mask(m) for m in ms]))):
            t0 = time.perf_counter()
            groups = fn(msgs)
            row[f"{key}_s"] = time.perf_counter() - t0
            row[key] = float("nan") if groups is None else grouping_accuracy(truth, groups)
            if key == "logaudit":
                row["groups"] = len(set(groups))
        rows.append(row)
    return rows


def print_loghub(folder: Path) -> None:
    if not (folder / "HDFS_2k.log_structured_corrected.csv").exists():
        print(f"\nLoghub-2k: not found in {folder} (--loghub DIR or $LOGAUDIT_LOGHUB): skipped")
        return
    rows = loghub_table(folder)
    print("\nLoghub-2k grouping accuracy (GA), same run; drain3 default settings; seconds per 2,000 lines")
    print(f"{'dataset':<10} {'logaudit':>8} {'drain3':>7} {'d3+mask':>7} {'Drain*':>6} {'groups':>7} {'truth':>6}"
          f" {'logaudit s':>10} {'drain3 s':>9}")
    for r in rows:
        print(f"{r['dataset']:<10} {r['logaudit']:8.4f} {r['drain3']:7.4f} {r['drain3_mask']:7.4f} "
              f"{DRAIN_PUBLISHED[str(r['dataset'])]:6.4f} {r['groups']:7.0f} {r['truth']:6.0f} "
              f"{r['logaudit_s']:10.3f} {r['drain3_s']:9.3f}")
    mean = {k: float(np.mean([float(r[k]) for r in rows])) for k in ("logaudit", "drain3", "drain3_mask")}
    total = {k: sum(float(r[k]) for r in rows) for k in ("logaudit_s", "drain3_s")}
    print(f"{'average':<10} {mean['logaudit']:8.4f} {mean['drain3']:7.4f} {mean['drain3_mask']:7.4f} "
          f"{float(np.mean(list(DRAIN_PUBLISHED.values()))):6.4f} {'':7} {'':6} {total['logaudit_s']:10.3f} "
          f"{total['drain3_s']:9.3f}")
    print("Drain*: published, with a regex list and a similarity chosen per dataset (logparser)")


# ------------------------------------------------------------------------------------ speed
def distinct_messages(n: int, seed: int = 0) -> list[str]:
    """n distinct messages of the generated corpus."""
    out: dict[str, None] = {}
    while len(out) < n:
        for m, _ in corpus(n, seed):
            out[m] = None
        seed += 1
    return list(out)[:n]


def print_speed(n: int, repeats: int = 3) -> None:
    """Best CPU seconds (this process: the machine may be shared) of each method over `repeats` runs."""
    msgs = distinct_messages(n)
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in (("group_templates", group_templates), ("drain3", drain3_groups),
                         ("drain3 after mask", lambda ms: drain3_groups([mask(m) for m in ms]))):
            t0 = time.process_time()
            done = fn(msgs)
            if done is not None:
                best[name] = min(best.get(name, float("inf")), time.process_time() - t0)
    print(f"\nspeed: {n:,} distinct generated messages, best of {repeats}, CPU seconds of one process")
    for name, sec in best.items():
        print(f"{name:<18} {sec:6.2f} s  {n / sec:10,.0f} msg/s")
    for other in ("drain3", "drain3 after mask"):
        if other in best:
            print(f"group_templates / {other} time: {best['group_templates'] / best[other]:.2f}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sample_corpus(entries: int, seed: int) -> list[tuple[str, str]]:
    """Held-out lines: the WARNING/ERROR lines no catalog pattern matches in `logaudit.sample`'s
    generator (cache misses, Redis retries, rate-limiter fallbacks, Python-logging warnings from 3
    loggers, loguru errors from 3 call sites), with the generator's event kind and logger as truth."""
    from logaudit.sources.sample import SampleConfig, SampleGenerator

    out = []
    for e in SampleGenerator(SampleConfig(entries=entries, seed=seed)):
        text = e.get("textPayload")
        if not isinstance(text, str):
            continue
        text = _ANSI.sub("", text)
        if text.startswith(("Cache miss for key", "Retrying Redis connection", "Rate limiter fallback")):
            out.append((text, text.split(" ")[0]))
        elif " - WARNING - " in text:
            out.append((text, "pylog:" + text.split(" - ")[1]))
        elif "| ERROR" in text:
            out.append((text, "loguru:" + text.split("| ")[2].split(" - ")[0].rsplit(":", 1)[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sample-entries", type=int, default=50_000, help="size of the held-out logaudit.sample run")
    ap.add_argument("--loghub", type=Path, default=default_loghub(),
                    help="Loghub-2k folder (default: $LOGAUDIT_LOGHUB or ../shared/benchmarks/loghub-2k from the repo)")
    ap.add_argument("--speed", type=int, default=100_000, help="distinct messages for the speed run (0: none)")
    args = ap.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {}
    seconds: Counter = Counter()
    mismatches = 0
    for seed in range(args.seeds):
        data = corpus(args.messages, seed)
        msgs = [m for m, _ in data]
        truth = [f for _, f in data]
        mismatches += sql_matches_python(msgs)
        for name, fn in METHODS:
            t0 = time.perf_counter()
            groups = fn(msgs)
            seconds[name] += time.perf_counter() - t0
            if groups is None:
                continue
            results.setdefault(name, []).append(scores(truth, groups))
    print(f"{args.messages:,} messages x {args.seeds} seeds, {len(families())} families (truth groups)")
    print(f"{'method':<26} {'ARI':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'groups':>8} {'msg/s':>10}")
    for name, _ in METHODS:
        if name not in results:
            print(f"{name:<26} (not installed)")
            continue
        rs = results[name]
        mean = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
        rate = args.messages * len(rs) / seconds[name] if seconds[name] else float("inf")
        print(f"{name:<26} {mean['ari']:6.3f} {mean['precision']:6.3f} {mean['recall']:6.3f} {mean['f1']:6.3f} "
              f"{mean['groups']:8.0f} {rate:10,.0f}")
    print(f"SQL vs Python masks: {mismatches} differing templates")
    held = sample_corpus(args.sample_entries, 7)
    msgs = [m for m, _ in held]
    truth = [f for _, f in held]
    print(f"\nheld-out: {len(msgs):,} unclassified WARNING+ lines of logaudit.sample ({args.sample_entries:,} entries), "
          f"{len(set(truth))} truth groups")
    print(f"{'method':<26} {'ARI':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'groups':>8}")
    for name, fn in METHODS:
        groups = fn(msgs)
        if groups is None:
            continue
        r = scores(truth, groups)
        print(f"{name:<26} {r['ari']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} {r['groups']:8.0f}")
    print_loghub(args.loghub)
    if args.speed:
        print_speed(args.speed)
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
