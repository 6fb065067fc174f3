"""Pattern catalogs: the known log lines analysts recognise a deploy's health by.

A catalog is a YAML file (see docs/catalog.md for the full format)::

    catalog: netra-backend
    version: 1
    patterns:
      - id: ws-auth-no-token
        title: WebSocket connection rejected without token
        category: critical
        regex: '\\bNO_TOKEN\\b'
        examples: ["NO_TOKEN DEBUG: {}"]

`load_catalogs` reads one or more files (or directories of ``*.yaml``), validates every pattern
and returns one `Catalog`. `default_catalog_paths` says which files a run uses: the catalogs
shipped inside the package, then the local ones asked for (``--catalog``, ``$LOGAUDIT_CATALOG``);
never a folder that happens to be in the working directory. Every problem is a `CatalogProblem`
carrying ``file:line``, the pattern id and a hint; they are raised together as `CatalogLoadError`
(a `CatalogError`, exit code 4).
`run_self_test` checks every example and counter-example through the classification engine.

>>> cat = load_catalogs(default_catalog_paths())
>>> cat.get("ws-auth-failure").category
'critical'
>>> [(s.name, s.origin) for s in cat.sources]
[('cloud-run', 'shipped'), ('netra-backend', 'shipped')]
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import regex
import yaml

from logaudit.catalog.backtracking import Analysis, analyse
from logaudit.core.errors import CatalogError, UsageError
from logaudit.shipped import PATTERNS as SHIPPED_PATTERNS
from logaudit.shipped import resource_name, shipped_dir
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.schema import ENTRY_FIELDS, TEXT_COLUMNS

#: The pattern categories, in the order every output lists them (the one definition).
CATEGORIES: tuple[str, ...] = ("critical", "warning", "positive", "info")
CATALOG_VERSION = 1
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")

TOP_KEYS: tuple[str, ...] = ("catalog", "version", "description", "patterns")
PATTERN_KEYS: tuple[str, ...] = (
    "id", "title", "category", "regex", "field", "when", "description", "tags",
    "examples", "counter_examples", "ignore_case", "allow_backtracking", "override",
)
REQUIRED_KEYS: tuple[str, ...] = ("id", "title", "category", "regex")
EXAMPLE_KEYS: tuple[str, ...] = ("text", "fields")
#: `when` keys that are operators rather than column names.
WHEN_OPERATORS: tuple[str, ...] = ("severity_at_least", "severity_at_most")
NUMERIC_OPS: tuple[str, ...] = ("gt", "gte", "lt", "lte")

_COLUMN_TYPES: dict[str, str] = {}
for _name, _typ, _ in ENTRY_FIELDS:
    if str(_typ) == "string":
        _COLUMN_TYPES[_name] = "text"
    elif str(_typ) in ("int16", "int32", "int64", "double"):
        _COLUMN_TYPES[_name] = "number"
    elif str(_typ) == "bool":
        _COLUMN_TYPES[_name] = "bool"
    else:
        _COLUMN_TYPES[_name] = "other"

#: Local catalogs (files or directories, os.pathsep-separated) added to the shipped ones.
CATALOG_ENV = "LOGAUDIT_CATALOG"
#: Set (1, true, yes): leave the shipped catalogs out.
NO_SHIPPED_ENV = "LOGAUDIT_NO_SHIPPED_CATALOGS"
#: Deprecated: catalogs used *instead of* the shipped ones (its meaning before LOGAUDIT_CATALOG).
DEFAULT_PATTERNS_ENV = "LOGAUDIT_PATTERNS"


# ---------------------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class CatalogProblem:
    """One thing wrong with a catalog file, located at `file:line`."""

    file: str
    line: int
    pattern_id: str | None
    message: str
    hint: str | None = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        who = f"{self.pattern_id}: " if self.pattern_id else ""
        return f"{self.location}: {who}{self.message}"

    def format(self) -> str:
        """The problem and, on the next line, its hint."""
        return str(self) if not self.hint else f"{self}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "pattern_id": self.pattern_id,
                "message": self.message, "hint": self.hint}


class CatalogLoadError(CatalogError):
    """Catalog files that do not load; `problems` lists every problem found."""

    def __init__(self, problems: list[CatalogProblem]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(str(self.problems[0]), hint=self.problems[0].hint)
        else:
            body = "\n".join(p.format() for p in self.problems)
            super().__init__(f"{len(self.problems)} problems in pattern catalogs:\n{body}")




class _Stop(Exception):
    """Internal: first problem found while not collecting."""


# ---------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Example:
    """An example text; `fields` (when given) are the named groups it must extract."""

    text: str
    fields: dict[str, str | None] | None = None
    line: int = 0


@dataclass(frozen=True)
class Condition:
    """One `when` condition, normalized: column, operator and operand."""

    column: str
    op: str  # ">=", "<=", "glob", "ranges", "eq"
    value: tuple[Any, ...]

    def key(self) -> list[Any]:
        return [self.column, self.op, list(self.value)]

    def matches_value(self, v: Any) -> bool:
        """Scalar evaluation (the engine evaluates conditions vectorised; this is the reference)."""
        if v is None:
            return False
        if self.op == ">=":
            return v >= self.value[0]
        if self.op == "<=":
            return v <= self.value[0]
        if self.op == "glob":
            return any(fnmatch.fnmatchcase(v, g) for g in self.value)
        if self.op == "ranges":
            return any(_in_range(v, r) for r in self.value)
        if self.op == "eq":
            return v == self.value[0]
        raise ValueError(self.op)


def _in_range(v: Any, r: tuple[Any, Any, bool, bool]) -> bool:
    lo, hi, lo_incl, hi_incl = r
    if lo is not None and (v < lo or (v == lo and not lo_incl)):
        return False
    return not (hi is not None and (v > hi or (v == hi and not hi_incl)))


@dataclass(frozen=True, eq=False)
class Pattern:
    """One catalog pattern. `fingerprint` hashes everything that decides what it matches."""

    id: str
    title: str
    category: str
    regex: str
    field: str = "message"
    when: tuple[Condition, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()
    counter_examples: tuple[Example, ...] = ()
    ignore_case: bool = False
    allow_backtracking: bool = False
    override: bool = False
    catalog: str = ""
    file: str = ""
    line: int = 0

    @cached_property
    def flags(self) -> int:
        return regex.IGNORECASE if self.ignore_case else 0

    @cached_property
    def compiled(self) -> regex.Pattern:
        return regex.compile(self.regex, self.flags)

    @cached_property
    def analysis(self) -> Analysis:
        """How a backtracking matcher fares with the regex: proven linear or not (`logaudit.catalog.backtracking`)."""
        return analyse(self.regex, self.ignore_case)

    @cached_property
    def group_names(self) -> tuple[str, ...]:
        return tuple(self.compiled.groupindex)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the normalized matching definition (not of id, title, category or docs)."""
        spec = {"regex": self.regex, "ignore_case": self.ignore_case, "field": self.field,
                "when": sorted(c.key() for c in self.when), "allow_backtracking": self.allow_backtracking}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def time_limited(self) -> bool:
        """Whether every `regex` search of it runs under the engine's time limit: not proven linear."""
        return self.allow_backtracking or not self.analysis.linear

    @property
    def time_limit_note(self) -> str | None:
        """Why it runs under the time limit (None: it is proven linear and not marked)."""
        found = self.analysis
        if found.linear:
            return ("allow_backtracking is set, but the regex is proven linear: remove it to evaluate it without "
                    "the time limit") if self.allow_backtracking else None
        why = found.risk.message if found.risk else f"not analysed: {found.unanalysed}"
        return f"runs under a time limit on every text: {why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "category": self.category, "regex": self.regex,
            "field": self.field, "when": [c.key() for c in self.when], "description": self.description,
            "tags": list(self.tags), "catalog": self.catalog, "file": self.file, "line": self.line,
            "fingerprint": self.fingerprint, "examples": len(self.examples),
            "counter_examples": len(self.counter_examples),
        }


@dataclass(frozen=True)
class CatalogSource:
    """One loaded file: `origin` is "shipped" (package data, named by `resource`) or "local";
    `patterns` how many patterns it defines, `overrides` how many of them replace an earlier
    file's, `fingerprint` changes when any of them changes (as `Catalog.fingerprint`)."""

    name: str
    version: int
    file: str
    description: str | None
    patterns: int
    origin: str = "local"
    resource: str | None = None
    fingerprint: str = ""
    overrides: int = 0

    def to_dict(self) -> dict[str, Any]:
        """What outputs say about the file (`catalogs` in summary, compare and report JSON):
        a shipped file by its resource name, the same on every machine; a local one by its absolute path."""
        return {"name": self.name, "origin": self.origin,
                "path": None if self.origin == "shipped" else os.path.abspath(self.file),
                "resource": self.resource, "patterns": self.patterns, "overrides": self.overrides,
                "fingerprint": self.fingerprint}


@dataclass
class Catalog:
    """Patterns from one or more catalog files, in load order (overrides keep the original slot)."""

    patterns: list[Pattern] = field(default_factory=list)
    sources: list[CatalogSource] = field(default_factory=list)

    def __iter__(self) -> Iterator[Pattern]:
        return iter(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def by_id(self) -> dict[str, Pattern]:
        return {p.id: p for p in self.patterns}

    def get(self, pattern_id: str) -> Pattern:
        try:
            return self.by_id[pattern_id]
        except KeyError:
            raise CatalogError(f"no pattern {pattern_id!r} in the loaded catalogs") from None

    @property
    def fingerprint(self) -> str:
        """Changes when any pattern's matching definition, id or category changes."""
        return _fingerprint(self.patterns)

    def describe(self) -> list[dict[str, Any]]:
        """The loaded files, in load order (`CatalogSource.to_dict`)."""
        return [s.to_dict() for s in self.sources]

    def subset(self, ids: Iterable[str]) -> Catalog:
        wanted = set(ids)
        return Catalog([p for p in self.patterns if p.id in wanted], list(self.sources))


def _fingerprint(patterns: Iterable[Pattern]) -> str:
    h = hashlib.sha256()
    for p in patterns:
        h.update(f"{p.id}\0{p.category}\0{p.fingerprint}\n".encode())
    return h.hexdigest()[:16]


def describe_catalogs(catalogs: Iterable[dict[str, Any]]) -> str:
    """The catalogs of a run (`Catalog.describe()`) in one line of text.

    >>> describe_catalogs([{"name": "cloud-run", "origin": "shipped", "path": None, "patterns": 40, "overrides": 0},
    ...                    {"name": "team", "origin": "local", "path": "/srv/team.yaml", "patterns": 2, "overrides": 1}])
    'cloud-run (shipped, 40 patterns), team (local /srv/team.yaml, 2 patterns, 1 override)'
    """
    parts = []
    for c in catalogs:
        where = "shipped" if c["origin"] == "shipped" else f"local {c['path']}"
        overrides = c.get("overrides") or 0
        extra = f", {overrides} override{'s' if overrides != 1 else ''}" if overrides else ""
        parts.append(f"{c['name']} ({where}, {c['patterns']} pattern{'s' if c['patterns'] != 1 else ''}{extra})")
    return ", ".join(parts) or "none"


# ---------------------------------------------------------------------------------------- YAML
class _LineDict(dict):
    """A mapping that remembers where it and each of its keys start (1-based lines)."""

    line: int = 0
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class _LineList(list):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers for mappings, their keys and sequence items."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
            ) from None
        line = key_node.start_mark.line + 1
        if key in out:
            out.duplicates.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


class _FastLineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same on libyaml when PyYAML has it (8x faster); errors are reported by `_LineLoader`."""


for _loader in (_LineLoader, _FastLineLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(mapping: Any, key: str, default: int) -> int:
    lines = getattr(mapping, "key_lines", None)
    return lines.get(key, default) if lines else default


# ---------------------------------------------------------------------------------------- loading
def shipped_catalog_files() -> list[Path]:
    """The catalog files shipped inside the package (`patterns/` in the repository), by name."""
    return sorted(p for p in shipped_dir(SHIPPED_PATTERNS, CatalogError).iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file())


def default_catalog_paths(local: Iterable[str | os.PathLike] | None = None, *,
                          shipped: bool | None = None) -> list[Path]:
    """The catalog files a run uses: the shipped catalogs, then the `local` ones.

    `local` are files or directories (None: ``$LOGAUDIT_CATALOG``, os.pathsep-separated); a
    local pattern with a shipped pattern's id must say ``override: true``. `shipped=False`
    leaves the shipped catalogs out (None: unless ``$LOGAUDIT_NO_SHIPPED_CATALOGS`` is set).
    A local file that is a shipped file (``--catalog patterns/`` in the repository) is not
    loaded twice. The deprecated ``$LOGAUDIT_PATTERNS``, when no local catalog is named, is
    used instead of the shipped catalogs, as before (with a note). The working directory
    plays no part.

    >>> [p.name for p in default_catalog_paths([])]
    ['cloud_run.yaml', 'netra_backend.yaml']
    """
    legacy = _env_paths(DEFAULT_PATTERNS_ENV)
    if local is None:
        local = _env_paths(CATALOG_ENV)
        if legacy and not local:
            _note_legacy_env("used instead of the shipped catalogs")
            return expand_paths(legacy)
    local = list(local)
    if legacy:
        _note_legacy_env(f"ignored: --catalog or ${CATALOG_ENV} names the local catalogs")
    if shipped is None:
        shipped = os.environ.get(NO_SHIPPED_ENV, "").strip().lower() not in ("1", "true", "yes", "on")
    if not shipped and not local:
        raise UsageError("no catalogs to use: the shipped catalogs are left out and no local catalog is given",
                         hint=f"add --catalog FILE_OR_DIR (or ${CATALOG_ENV}), or drop --no-shipped-catalogs "
                              f"(${NO_SHIPPED_ENV})")
    files = shipped_catalog_files() if shipped else []
    known = {p.resolve() for p in files}
    for raw in local:
        found = expand_paths([raw])
        if not found:
            raise CatalogLoadError([CatalogProblem(str(raw), 0, None, "no catalog files found (*.yaml, *.yml)",
                                                   "pass .yaml files or a directory holding them")])
        files += [p for p in found if p.resolve() not in known]
        known.update(p.resolve() for p in found)
    return files


def _env_paths(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p]


_NOTED: set[str] = set()


def _note_legacy_env(what: str) -> None:
    """Say once per process that $LOGAUDIT_PATTERNS is deprecated and what it did."""
    if what not in _NOTED:
        _NOTED.add(what)
        logging.getLogger("logaudit").warning(
            "$%s is deprecated (%s): use $%s for catalogs added to the shipped ones, with $%s=1 for only your own",
            DEFAULT_PATTERNS_ENV, what, CATALOG_ENV, NO_SHIPPED_ENV)


def _is_shipped(path: Path) -> bool:
    try:
        return path.resolve().parent == shipped_dir(SHIPPED_PATTERNS, CatalogError).resolve()
    except CatalogError:
        return False


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given (`~` expanded); directories become their *.yaml / *.yml files, sorted by name."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            out.append(path)
    return out


class _Collector:
    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.problems: list[CatalogProblem] = []

    def add(self, file: str, line: int, pattern_id: str | None, message: str, hint: str | None = None) -> None:
        self.problems.append(CatalogProblem(file, line, pattern_id, message, hint))
        if not self.collect:
            raise _Stop


def load_catalogs(paths: Iterable[str | os.PathLike] | None = None, collect: bool = False) -> Catalog:
    """Load and validate catalog files; raise `CatalogLoadError` with file:line problems.

    Without `collect` loading stops at the first problem; with it every problem in every file
    is reported. A pattern id may appear once across all files, except that a later file may
    replace an earlier pattern by repeating its id with ``override: true``.
    """
    files = default_catalog_paths() if paths is None else expand_paths(paths)
    key = _files_key(files)
    hit = _LOADED.get(key) if key is not None else None
    if hit is not None:  # the same files, unchanged: a fresh Catalog of the same (immutable) patterns
        return Catalog(list(hit.patterns), list(hit.sources))
    col = _Collector(collect)
    catalog = Catalog()
    index: dict[str, int] = {}  # id -> position in catalog.patterns
    seen: dict[str, Pattern] = {}
    try:
        if not files:
            col.add(str(paths), 0, None, "no catalog files found", "pass .yaml files or a directory holding them")
        for path in files:
            _load_file(path, col, catalog, index, seen)
    except _Stop:
        pass
    if col.problems:
        raise CatalogLoadError(col.problems)
    if key is not None and _files_key(files) == key:  # not edited while it was being read
        _LOADED[key] = Catalog(list(catalog.patterns), list(catalog.sources))
        while len(_LOADED) > 8:
            _LOADED.pop(next(iter(_LOADED)))
    return catalog


#: Catalogs loaded in this process, by their files' paths (as given: they are reported as such)
#: and contents: a notebook or a long process that opens many `Audit`s parses the YAML once.
_LOADED: dict[tuple, Catalog] = {}


def _files_key(files: list[Path]) -> tuple | None:
    try:
        return tuple((str(f), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files)
    except OSError:
        return None  # an unreadable file: load (and report it) as usual


def _load_file(path: Path, col: _Collector, catalog: Catalog, index: dict[str, int],
               seen: dict[str, Pattern]) -> None:
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        col.add(fname, 0, None, "no such file", "check the path")
        return
    except (OSError, UnicodeDecodeError) as err:
        col.add(fname, 0, None, f"cannot read: {err}")
        return
    try:
        try:
            doc = yaml.load(text, Loader=_FastLineLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError:  # parsed again for the error's wording and position
            doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        col.add(fname, line, None, f"YAML syntax error: {err.problem or err}",
                "check indentation and quoting; single-quote regexes ('\\bNO_TOKEN\\b')")
        return
    except yaml.YAMLError as err:
        col.add(fname, 0, None, f"YAML error: {err}")
        return
    if not isinstance(doc, dict):
        col.add(fname, getattr(doc, "line", 1) or 1, None, "top level must be a mapping",
                f"a catalog has the keys {', '.join(TOP_KEYS)}")
        return
    for key, line in doc.duplicates:
        col.add(fname, line, None, f"duplicate key {key!r}", "each key may appear once in a mapping")
    for key in doc:
        if key not in TOP_KEYS:
            col.add(fname, doc.key_lines[key], None, f"unknown top-level key {key!r}",
                    _valid_keys_hint(key, TOP_KEYS))
    name = doc.get("catalog")
    if name is None:
        col.add(fname, doc.line, None, "missing key 'catalog'", "name the catalog: `catalog: my-service`")
        name = path.stem
    elif not isinstance(name, str) or not ID_RE.match(name):
        col.add(fname, doc.key_lines["catalog"], None, f"invalid catalog name {name!r}",
                "names match [a-z0-9][a-z0-9._-]*")
        name = str(name)
    version = doc.get("version")
    if version is None:
        col.add(fname, doc.line, None, "missing key 'version'", f"add `version: {CATALOG_VERSION}`")
    elif version != CATALOG_VERSION or isinstance(version, bool):
        col.add(fname, doc.key_lines["version"], None, f"unsupported version {version!r}",
                f"this logaudit reads catalog version {CATALOG_VERSION}")
    desc = doc.get("description")
    if desc is not None and not isinstance(desc, str):
        col.add(fname, doc.key_lines["description"], None, "description must be a string")
    patterns = doc.get("patterns")
    if patterns is None:
        col.add(fname, doc.line, None, "missing key 'patterns'", "list the patterns under `patterns:`")
        patterns = []
    elif not isinstance(patterns, list):
        col.add(fname, doc.key_lines["patterns"], None, "'patterns' must be a list of mappings")
        patterns = []
    local: dict[str, int] = {}
    mine: list[Pattern] = []
    overrides = 0
    for i, item in enumerate(patterns):
        line = patterns.item_lines[i] if isinstance(patterns, _LineList) else doc.line
        pat = _load_pattern(item, line, fname, name, col)
        if pat is None:
            continue
        if pat.id in local:
            col.add(fname, pat.line, pat.id, f"duplicate id {pat.id!r} (first defined at {fname}:{local[pat.id]})",
                    "ids are unique across all loaded catalogs; rename one")
            continue
        local[pat.id] = pat.line
        if pat.id in index:
            earlier = seen[pat.id]
            if not pat.override:
                col.add(fname, pat.line, pat.id,
                        f"duplicate id {pat.id!r} (already defined at {earlier.location})",
                        "rename it, or add `override: true` to replace the earlier definition"
                        + (f" (or run with --no-shipped-catalogs / ${NO_SHIPPED_ENV}=1 to use only your own catalogs)"
                           if _is_shipped(Path(earlier.file)) else ""))
                continue
            catalog.patterns[index[pat.id]] = pat
            overrides += 1
        else:
            if pat.override:
                col.add(fname, _line_of(item, "override", pat.line), pat.id,
                        f"override: true but no earlier catalog defines {pat.id!r}",
                        "remove `override`, or load the catalog it overrides first")
                continue
            index[pat.id] = len(catalog.patterns)
            catalog.patterns.append(pat)
        seen[pat.id] = pat
        mine.append(pat)
    shipped = _is_shipped(path)
    catalog.sources.append(CatalogSource(
        name, version if isinstance(version, int) else 0, fname, desc if isinstance(desc, str) else None, len(mine),
        origin="shipped" if shipped else "local",
        resource=resource_name(SHIPPED_PATTERNS, path.name) if shipped else None,
        fingerprint=_fingerprint(mine), overrides=overrides))


def _valid_keys_hint(key: Any, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(str(key), valid, n=1)
    prefix = f"did you mean {close[0]!r}? " if close else ""
    return f"{prefix}valid keys: {', '.join(valid)}"


def _load_pattern(item: Any, line: int, fname: str, catalog_name: str, col: _Collector) -> Pattern | None:
    if not isinstance(item, dict):
        col.add(fname, line, None, "a pattern must be a mapping", f"give at least {', '.join(REQUIRED_KEYS)}")
        return None
    line = getattr(item, "line", line)
    pid = item.get("id")
    ok = True
    if pid is None:
        col.add(fname, line, None, "pattern has no id", "add `id: my-pattern` ([a-z0-9][a-z0-9._-]*)")
        return None
    if not isinstance(pid, str) or not ID_RE.match(pid):
        col.add(fname, _line_of(item, "id", line), str(pid), f"invalid id {pid!r}",
                "ids match [a-z0-9][a-z0-9._-]* (lower case, digits, '.', '_', '-')")
        return None

    def problem(where: str | int | None, message: str, hint: str | None = None) -> None:
        """Report at a line number, at the line of key `where`, or at the pattern's line."""
        nonlocal ok
        ok = False
        at = where if isinstance(where, int) else (_line_of(item, where, line) if where else line)
        col.add(fname, at, pid, message, hint)

    for key, kline in getattr(item, "duplicates", []):
        ok = False
        col.add(fname, kline, pid, f"duplicate key {key!r}", "each key may appear once in a pattern")
    for key in item:
        if key not in PATTERN_KEYS:
            problem(key, f"unknown key {key!r}", _valid_keys_hint(key, PATTERN_KEYS))
    for key in REQUIRED_KEYS:
        if key not in item:
            problem(None, f"missing key {key!r}", f"every pattern needs {', '.join(REQUIRED_KEYS)}")
    title = item.get("title")
    if "title" in item and (not isinstance(title, str) or not title.strip()):
        problem("title", "title must be a non-empty string")
    category = item.get("category")
    if "category" in item and category not in CATEGORIES:
        problem("category", f"bad category {category!r}", f"one of: {', '.join(CATEGORIES)}")
    bools: dict[str, bool] = {}
    for key in ("ignore_case", "allow_backtracking", "override"):
        value = item.get(key, False)
        if not isinstance(value, bool):
            problem(key, f"{key} must be true or false, not {value!r}")
            value = False
        bools[key] = value
    fld = item.get("field", "message")
    if not isinstance(fld, str) or fld not in TEXT_COLUMNS:
        close = difflib.get_close_matches(str(fld), sorted(TEXT_COLUMNS), n=1)
        problem("field", f"field {fld!r} is not a text column of the entry table",
                (f"did you mean {close[0]!r}? " if close else "") + "text columns: " + ", ".join(sorted(TEXT_COLUMNS)))
        fld = "message"
    rx_src = item.get("regex")
    compiled: regex.Pattern | None = None
    if "regex" in item:
        if not isinstance(rx_src, str) or not rx_src:
            problem("regex", "regex must be a non-empty string", "quote it: regex: '\\bNO_TOKEN\\b'")
        else:
            compiled = _check_regex(rx_src, bools["ignore_case"], bools["allow_backtracking"], problem)
    when = _load_when(item.get("when"), problem) if "when" in item else ()
    desc = item.get("description")
    if desc is not None and not isinstance(desc, str):
        problem("description", "description must be a string")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problem("tags", "tags must be a list of strings", "tags: [auth, websocket]")
        tags = []
    examples = _load_examples(item, "examples", compiled, problem, line)
    counters = _load_examples(item, "counter_examples", compiled, problem, line)
    if not ok:
        return None
    return Pattern(
        id=pid, title=title.strip(), category=category, regex=rx_src, field=fld, when=when,
        description=desc.strip() if isinstance(desc, str) else None, tags=tuple(tags),
        examples=examples, counter_examples=counters, ignore_case=bools["ignore_case"],
        allow_backtracking=bools["allow_backtracking"], override=bools["override"],
        catalog=catalog_name, file=fname, line=line,
    )


def _check_regex(src: str, ignore_case: bool, allow_backtracking: bool, problem: Any) -> regex.Pattern | None:
    try:
        compiled = regex.compile(src, regex.IGNORECASE if ignore_case else 0)
    except regex.error as err:
        pos = err.pos if err.pos is not None else 0
        problem("regex", f"regex does not compile: {err.msg} at position {pos}",
                f"{src!r} fails near {src[max(0, pos - 10):pos + 10]!r}; the syntax is the `regex` module's")
        return None
    except (TypeError, ValueError, OverflowError) as err:
        problem("regex", f"regex does not compile: {err}")
        return None
    if compiled.search("") is not None:
        problem("regex", "regex matches the empty string, so it would match every entry",
                "anchor it on some text that must be present")
        return None
    risk = None if allow_backtracking else analyse(src, ignore_case).risk
    if risk:
        problem("regex", f"regex may backtrack catastrophically: {risk.message} (for example on {risk.witness})",
                f"{risk.hint}; or set `allow_backtracking: true` to run it under a time limit")
        return None
    return compiled


_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_QUANTIFIER = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")


def normalize_for_re(src: str) -> str:
    """Rewrite `regex`-only spellings that `re` parses identically: (?<name>...) -> (?P<name>...).

    Raises ValueError for a ``{`` that is not a repeat count: `re` reads it as a literal while
    `regex` may read it as fuzzy matching (``(?:ab){e<=1}``), so the translation would be wrong.
    """
    out = []
    i = 0
    in_class = False
    while i < len(src):
        c = src[i]
        if c == "\\":
            out.append(src[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if src[i:i + 1] == "^":
                out.append("^")
                i += 1
            if src[i:i + 1] == "]":
                out.append("]")
                i += 1
            continue
        elif c == "(" and _NAMED_GROUP.match(src, i):
            out.append("(?P<")
            i += 3
            continue
        elif c == "{" and not _QUANTIFIER.match(src, i):
            raise ValueError(f"brace at {i} is not a repeat count")
        out.append(c)
        i += 1
    return "".join(out)


def backtracking_risk(src: str, ignore_case: bool = False) -> str | None:
    """Why `src` may take more than linear time per start position, or None (see `logaudit.catalog.backtracking`).

    Patterns the analysis cannot read (fuzzy matching and other `regex`-only syntax) give None:
    the engine runs them under its time limit.

    >>> backtracking_risk(r"(?:a|aa)+b")
    '`(?:a|aa)+` can match the same text in more than one way: the ways to try double with every few characters'
    """
    risk = analyse(src, ignore_case).risk
    return risk.message if risk else None


def _load_when(spec: Any, problem: Any) -> tuple[Condition, ...]:
    if not isinstance(spec, dict):
        problem("when", "when must be a mapping of conditions",
                "when: {severity_at_least: WARNING, service: 'netra-backend*', http_status: 4xx}")
        return ()
    out: list[Condition] = []
    lines = getattr(spec, "key_lines", {})
    failed = False
    for key, value in spec.items():
        kline = lines.get(key) or "when"
        if key in WHEN_OPERATORS:
            num = _severity_number(value)
            if num is None:
                problem(kline, f"when.{key}: unknown severity {value!r}",
                            "one of: " + ", ".join(SEVERITY_NUM))
                failed = True
                continue
            out.append(Condition("effective_severity_num", ">=" if key == "severity_at_least" else "<=", (num,)))
            continue
        kind = _COLUMN_TYPES.get(key) if isinstance(key, str) else None
        if kind is None:
            close = difflib.get_close_matches(str(key), list(_COLUMN_TYPES) + list(WHEN_OPERATORS), n=1)
            problem(kline, f"when: no column {key!r} in the entry table",
                        (f"did you mean {close[0]!r}? " if close else "")
                        + "when keys are severity_at_least, severity_at_most or an entry column (see logaudit.store.schema)")
            failed = True
            continue
        cond, err = _condition(key, kind, value)
        if err:
            problem(kline, f"when.{key}: {err[0]}", err[1])
            failed = True
            continue
        out.append(cond)
    return tuple(out) if not failed else ()


def _severity_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 800 else None
    if isinstance(value, str):
        return SEVERITY_NUM.get(value.strip().upper())
    return None


_STATUS_CLASS = re.compile(r"([1-5])xx\Z", re.IGNORECASE)


def _condition(column: str, kind: str, value: Any) -> tuple[Condition | None, tuple[str, str | None] | None]:
    if kind == "text":
        globs = value if isinstance(value, list) else [value]
        if not globs or not all(isinstance(g, str) and g for g in globs):
            return None, ("expects a glob or a list of globs", f"{column}: 'netra-backend*'")
        return Condition(column, "glob", tuple(globs)), None
    if kind == "bool":
        if not isinstance(value, bool):
            return None, ("expects true or false", None)
        return Condition(column, "eq", (value,)), None
    if kind == "number":
        if isinstance(value, dict):
            bad = [k for k in value if k not in NUMERIC_OPS]
            if bad or not value or not all(_is_number(v) for v in value.values()):
                return None, ("expects a number, a list, 'Nxx', or a mapping of gt/gte/lt/lte to numbers",
                              f"{column}: {{gte: 500}}")
            lo = value.get("gte", value.get("gt"))
            hi = value.get("lte", value.get("lt"))
            return Condition(column, "ranges", ((lo, hi, "gt" not in value, "lt" not in value),)), None
        items = value if isinstance(value, list) else [value]
        ranges = []
        for item in items:
            if _is_number(item):
                ranges.append((item, item, True, True))
            elif isinstance(item, str) and _STATUS_CLASS.match(item.strip()):
                base = int(item.strip()[0]) * 100
                ranges.append((base, base + 99, True, True))
            else:
                return None, (f"bad value {item!r}: expects a number, a list of numbers, or '4xx'/'5xx'",
                              f"{column}: [403, 404] or {column}: 5xx")
        if not ranges:
            return None, ("expects at least one value", None)
        return Condition(column, "ranges", tuple(ranges)), None
    return None, (f"column {column!r} cannot be used in `when` (type {kind})", "use a text, number or bool column")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _load_examples(item: dict, key: str, compiled: regex.Pattern | None, problem: Any,
                   pattern_line: int) -> tuple[Example, ...]:
    if key not in item:
        return ()
    raw = item[key]
    if not isinstance(raw, list):
        problem(key, f"{key} must be a list", f'{key}: ["a log line"]')
        return ()
    out = []
    item_lines = getattr(raw, "item_lines", [])
    for i, ex in enumerate(raw):
        line = item_lines[i] if i < len(item_lines) else _line_of(item, key, pattern_line)
        if isinstance(ex, str):
            out.append(Example(ex, None, line))
            continue
        if isinstance(ex, dict) and key == "examples":
            unknown = [k for k in ex if k not in EXAMPLE_KEYS]
            text = ex.get("text")
            fields = ex.get("fields", {})
            if unknown:
                problem(line, f"{key}[{i}]: unknown key {unknown[0]!r}", _valid_keys_hint(unknown[0], EXAMPLE_KEYS))
                continue
            if not isinstance(text, str):
                problem(line, f"{key}[{i}]: 'text' must be a string", "{text: '...', fields: {name: value}}")
                continue
            if not isinstance(fields, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str | int | float))
                                                       for k, v in fields.items()):
                problem(line, f"{key}[{i}]: 'fields' must map group names to strings", None)
                continue
            if compiled is not None:
                missing = [k for k in fields if k not in compiled.groupindex]
                if missing:
                    problem(line, f"{key}[{i}]: field {missing[0]!r} is not a named group of the regex",
                                "named groups: " + (", ".join(compiled.groupindex) or "(none)"))
                    continue
            out.append(Example(text, {k: (None if v is None else str(v)) for k, v in fields.items()}, line))
            continue
        problem(line, f"{key}[{i}] must be a string" + (" or {text:, fields:}" if key == "examples" else ""), None)
    return tuple(out)


__all__ = ["CATEGORIES", "Catalog", "CatalogLoadError", "CatalogProblem", "CatalogSource", "Condition", "Example", "Pattern", "backtracking_risk", "default_catalog_paths", "describe_catalogs", "expand_paths", "load_catalogs", "normalize_for_re", "shipped_catalog_files"]
