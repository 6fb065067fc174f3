"""From library values to what outputs show: one place for every renderer.

* `to_json` emits through `logaudit.core.jsonable.plain` with ``allow_nan=False``, so no output
  holds ``NaN`` or ``Infinity`` (strict JSON parsers reject them).
* `label`, `service_label` and `revision_label` show ``None`` as a placeholder.
* `one_line` shows log text on one line with control and bidirectional-override characters
  made visible, so log text can neither move the cursor of a terminal nor reorder a line.
* `md_text` and `md_code` put log text into Markdown as literal text (no emphasis, link,
  list, heading, table cell break or HTML tag can come out of it).
* `make_console` is the terminal of the text outputs: no markup parsing (log text is never
  read as rich markup), plain text when stdout is not a terminal or ``NO_COLOR`` is set.

>>> service_label(None), one_line("a\\n b\\x1b[31m")
('(no service)', 'a b\\\\x1b[31m')
>>> md_text("install sentry-sdk[fastapi] | *now*")
'install sentry-sdk\\\\[fastapi\\\\] \\\\| \\\\*now\\\\*'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from logaudit.core.jsonable import plain

NO_SERVICE = "(no service)"
NO_REVISION = "(no revision)"
#: How text outputs point to the rest of a list they cut.
SEE_JSON = "see --format json"



def to_json(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of `value` (through `plain`: missing values are null, never NaN)."""
    return json.dumps(plain(value), indent=indent, ensure_ascii=False, allow_nan=False, default=str)


# ============================================================================ text
def label(value: Any, missing: str = "-") -> str:
    """Display text of a value: `missing` for None/NaN/NaT, else its text on one line."""
    value = plain(value)
    return missing if value is None else one_line(str(value))


def service_label(value: Any) -> str:
    """A service as shown: ``(no service)`` for entries without one (load balancers, App Engine, ...)."""
    return label(value, NO_SERVICE)


def revision_label(value: Any) -> str:
    return label(value, NO_REVISION)


# Control characters (C0, DEL, C1) and the bidirectional marks, embeddings, overrides and
# isolates that can make a terminal or a browser show a line in another order than it is.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_BREAKS = re.compile("[\t\n\v\f\r\x85\u2028\u2029]")


def short_time(ts: str | None) -> str:
    """An RFC 3339 UTC text cut to whole seconds for display: deliberately shorter than
    `logaudit.core.timeparse.format_rfc3339`, whose full form the JSON outputs keep; "-" when missing.

    >>> short_time("2025-09-10T02:18:34.619410Z"), short_time(None)
    ('2025-09-10 02:18:34Z', '-')
    """
    return "-" if not ts else ts[:19].replace("T", " ") + "Z"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with line breaks as spaces and control / bidi-override characters escaped; its spaces kept."""
    return _HIDDEN.sub(_visible, _BREAKS.sub(" ", text))


def one_line(text: str | None, width: int | None = None) -> str:
    """`text` on one line: whitespace runs become one space, control and bidi-override
    characters are shown escaped (``\\x1b``, ``\\u202e``); longer than `width`: cut with an ellipsis."""
    if not text:
        return ""
    line = " ".join(visible(text).split())
    if width is not None and len(line) > width:
        return line[: width - 1] + "\u2026"
    return line


def more(hidden: int, what: str, where: str = SEE_JSON) -> str:
    """The line that says a list was cut: ``... 3 more reasons (see --format json)``."""
    return f"... {hidden:,} more {what} ({where})"


# ============================================================================ Markdown
# Backslash escapes are valid before any ASCII punctuation (CommonMark 2.4); these are the
# characters that start inline markup anywhere: emphasis, code, links, HTML, entities, table
# cells, strikethrough, math (GitHub).
_MD_INLINE = re.compile(r"[\\`*\[\]<>|~&$]|(?<![^\W_])_|_(?![^\W_])")  # `_` inside a word is no emphasis
# ... and these only at the start of a line: headings, lists, quotes, setext underlines, fences
_MD_LEAD = re.compile(r"^([#+\-=>]|\d+(?=[.)]))")


def md_text(text: Any) -> str:
    """Log text as literal inline Markdown (one line, every markup character escaped)."""
    return md_lead(md_inline(label(text, "")))


def md_inline(text: str) -> str:
    """A piece of a Markdown line as literal text: markup characters escaped, line breaks and
    control characters as in `one_line`, but its own spaces kept (pieces are joined)."""
    return _MD_INLINE.sub(lambda m: "\\" + m.group(), visible(text))


def md_lead(line: str) -> str:
    """A Markdown line whose start cannot open a block (heading, list item, quote, ...)."""
    return _MD_LEAD.sub(lambda m: m.group() + "\\" if m.group().isdigit() else "\\" + m.group(), line.lstrip())


def md_code(text: Any, *, table: bool = True) -> str:
    """Log text as a Markdown code span (one line; a fence longer than any backtick run in it).
    In a table cell `|` is escaped, which GitHub's tables undo inside code spans."""
    body = label(text, "")
    if not body:
        return ""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", body)), default=0) + 1)
    if body.startswith("`") or body.endswith("`") or (body.startswith(" ") and body.endswith(" ")):
        body = f" {body} "
    if table:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


# ============================================================================ terminal
def make_console(file: Any = None) -> Any:
    """The console of the text outputs: width from $COLUMNS, else the terminal's, else 80;
    colours only on a terminal without $NO_COLOR; strings are never read as markup or emoji codes."""
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR"))
    return Console(file=file, markup=False, emoji=False, highlight=False,
                   color_system=None if no_color else "auto")


@dataclass(frozen=True)
class Col:
    """A column of `print_table`. `wrap`: None never wraps (ids, numbers, times: always shown
    whole); "ids" wraps between words only (a list of ids); "text" wraps free text (a word
    longer than the column is folded)."""

    header: str
    right: bool = False
    wrap: str | None = None
    style: str | None = None


#: Narrowest a free-text column gets before a table is split.
TEXT_MIN = 16
_GAP = 3  # " │ " between two columns (no outer edge, no outer padding)


def print_table(con: Any, cols: Sequence[Col], rows: Sequence[Sequence[Any]], *, keys: int = 1,
                title: Any = None, row_styles: Sequence[str | None] | None = None) -> None:
    """Print a table whose every cell is shown whole at the console's width, never cut.

    When the columns do not fit side by side, the table is split into several tables that each
    repeat the first `keys` columns (the row's ids); when not even that fits, each row is
    printed as a block of ``header: value`` lines. Cells are text (never read as markup) or
    rich ``Text``.
    """
    from rich.text import Text

    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
    styles = list(row_styles or [None] * len(cells))
    natural = [max([_cell_len(col.header), *(_cell_len(row[i].plain) for row in cells)]) for i, col in enumerate(cols)]
    narrow = [_min_width(col, natural[i], [row[i].plain for row in cells]) for i, col in enumerate(cols)]
    width = con.width

    def fits(idx: list[int]) -> bool:
        return sum(narrow[i] for i in idx) + _GAP * (len(idx) - 1) <= width

    head, rest = list(range(keys)), list(range(keys, len(cols)))
    chunks: list[list[int]] = [rest]
    if not fits(head + rest):
        chunks = []
        for i in rest:
            if chunks and fits(head + chunks[-1] + [i]):
                chunks[-1].append(i)
            elif fits(head + [i]):
                chunks.append([i])
            else:
                chunks = []
                break
        if not chunks:  # not even the ids and one more column fit side by side
            _print_blocks(con, cols, cells, keys, title, styles)
            return
    for n, chunk in enumerate(chunks):
        idx = head + chunk
        table = _table(cols, idx, _widths(cols, idx, natural, narrow, width), title if n == 0 else None)
        for row, style in zip(cells, styles, strict=True):
            table.add_row(*(row[i] for i in idx), style=style)
        con.print(table)


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def _min_width(col: Col, natural: int, texts: list[str]) -> int:
    if col.wrap is None:
        return natural
    words = [w for t in [col.header, *texts] for w in t.split()]
    longest = max((_cell_len(w) for w in words), default=1)
    return min(natural, longest if col.wrap == "ids" else max(TEXT_MIN, max(_cell_len(w) for w in col.header.split())))


def _widths(cols: Sequence[Col], idx: list[int], natural: list[int], narrow: list[int], width: int) -> dict[int, int]:
    """Column widths: fixed columns their natural width; wrapping columns share what is left."""
    out = {i: narrow[i] for i in idx}
    spare = width - sum(out.values()) - _GAP * (len(idx) - 1)
    wants = {i: natural[i] - narrow[i] for i in idx if cols[i].wrap and natural[i] > narrow[i]}
    total = sum(wants.values())
    if total and spare > 0:
        for i, want in wants.items():
            out[i] += min(want, spare * want // total)
    return out


def _table(cols: Sequence[Col], idx: list[int], widths: dict[int, int], title: Any) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i in idx:
        col = cols[i]
        table.add_column(col.header, justify="right" if col.right else "left", width=widths[i],
                         no_wrap=col.wrap is None, overflow="fold", style=col.style)
    return table


def _print_blocks(con: Any, cols: Sequence[Col], cells: list[list[Any]], keys: int, title: Any,
                  styles: list[str | None]) -> None:
    """Each row as lines: its ids, then ``header: value`` per other column (wrapped, never cut)."""
    from rich.text import Text

    if title is not None:
        con.print(title, overflow="fold")
    for row, style in zip(cells, styles, strict=True):
        ids = Text("  ").join(row[:keys])
        ids.stylize(style or "bold")
        con.print(ids, overflow="fold")
        for col, cell in zip(cols[keys:], row[keys:], strict=True):
            con.print(Text.assemble(f"  {col.header}: ", cell), overflow="fold")


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal (`-` when there is none)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def ms(value: float | None) -> str:
    """Milliseconds as shown: `0.5 ms`, `37 ms`, `12.30 s` (`-` when there is none)."""
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"




__all__ = ["ms", "pct", "short_time", "NO_REVISION", "NO_SERVICE", "Col", "label", "make_console", "md_code", "md_inline", "md_lead", "md_text", "more", "one_line", "print_table",
           "revision_label", "service_label", "to_json", "visible"]
