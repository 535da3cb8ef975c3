"""Everything the CLI prints: lists as table / tsv / csv / json, mail text made safe, times in
the local zone, and `ticket show` through a pager.

Mail-derived text (subjects, names, addresses, file names, flags) comes from strangers. It is
never given to rich as markup, and `mail_text()` replaces C0/C1 controls, DEL and the bidi
overrides with visible stand-ins, so an ANSI or OSC sequence in a subject is shown, not obeyed.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import typer

from mailtix.locale import _, to_local

FORMATS = ("table", "tsv", "csv", "json")

FORMAT = typer.Option(None, "--format",
                      help="table, tsv, csv or json (default: table on a terminal, tsv otherwise)")
JSON = typer.Option(False, "--json", help="same as --format json")

# C0 except the ones handled below, DEL, C1, and the bidi embeddings/overrides/isolates that
# can make a line read differently from what it contains.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"[\t\n\r]+")


def _stand_in(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode control pictures: ESC shows as ␛
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def mail_text(value: Any, multiline: bool = False) -> str:
    """A mail-derived value as text that is safe on a terminal and in one table cell.

    One line unless `multiline` (tabs and newlines kept for message bodies).
    """
    if value is None:
        return ""
    text = str(value)
    if multiline:
        text = text.replace("\r\n", "\n")
    else:
        text = _SPACES.sub(" ", text)
    return _CONTROLS.sub(_stand_in, text)


# ---- time ---------------------------------------------------------------------------------


def local_time(value: Any, seconds: bool = False) -> str:
    """A stored time (ISO, UTC if it carries no offset) in the local zone, for people."""
    when = parse_time(value)
    if when is None:
        return mail_text(value)
    # The date order is the language's: 2026-11-22 14:05 / 22.11.2026 14:05.
    shown = to_local(when).strftime(_("%Y-%m-%d %H:%M"))
    return shown + to_local(when).strftime(":%S") if seconds else shown


def iso_local(value: Any) -> str:
    """A stored time in the local zone with its offset, for scripts (tsv, csv)."""
    when = parse_time(value)
    return mail_text(value) if when is None else to_local(when).isoformat(timespec="seconds")


def utc_arg(value: str | None, option: str) -> str | None:
    """A --since/--until date or time the user typed, read in the local zone, as the UTC ISO
    form the store keeps (so string comparison in SQL is time comparison)."""
    from datetime import UTC

    from mailtix.errors import UsageError
    from mailtix.locale import as_local

    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(_("{option} expects a date (2026-11-22) or a time (2026-11-22 14:00), "
                           "got {value!r}").format(option=option, value=value)) from None
    return as_local(when).astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    from datetime import UTC

    if not value:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---- lists --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a list.

    `cut`: ellipsised when the terminal is narrow (subjects, addresses); others never cut.
    `drop`: columns with a higher number leave first when even the minimum does not fit (or
    a `want` is not met); 0 never leaves. `time`: a stored time shown in the local zone.
    `mark`: a flag (0/1) shown to people as this mark when set and blank when not; tsv and
    csv keep the value.
    """

    key: str
    header: str
    cut: bool = False
    drop: int = 0
    time: bool = False
    right: bool = False
    minimum: int = 8
    want: int = 0  # narrower than this, other columns leave first
    style: Callable[[str], str] | None = None
    mark: str = ""

    def value(self, row: dict[str, Any], for_people: bool) -> str:
        raw = row.get(self.key)
        if self.mark and for_people:
            return self.mark if raw else ""
        if self.time:
            return local_time(raw) if for_people else iso_local(raw)
        if isinstance(raw, bool):
            return _("yes") if raw else _("no")
        if isinstance(raw, list | tuple):
            return mail_text(", ".join(str(v) for v in raw))
        return mail_text(raw)


def choose_format(fmt: str | None, json: bool = False) -> str:
    from mailtix.errors import UsageError

    if json:
        return "json"
    if fmt is None:
        return "table" if sys.stdout.isatty() else "tsv"
    if fmt not in FORMATS:
        raise UsageError(_("--format expects one of {choices}, got {value!r}").format(
            choices=", ".join(FORMATS), value=fmt))
    return fmt


def width() -> int:
    """COLUMNS when set, else the real terminal, else 80."""
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str, *,
           total: int | None = None, empty: str = "", data: Any = None) -> None:
    """Print a list in the chosen format; `total` (when larger) adds "N of M shown"."""
    if fmt == "json":
        from mailtix.cli.common import print_json

        print_json(list(rows) if data is None else data)
        return
    if fmt in ("tsv", "csv"):
        _delimited(rows, columns, fmt)
        if total is not None and total > len(rows):
            sys.stderr.write(_footer(len(rows), total) + "\n")
        return
    if not rows:
        if empty:
            typer.echo(empty)
        return
    _table(rows, columns)
    if total is not None and total > len(rows):
        typer.echo(_footer(len(rows), total))


def _footer(shown: int, total: int) -> str:
    return _("{shown} of {total} shown (raise --limit for more)").format(
        shown=shown, total=total)


def _delimited(rows: Iterable[dict[str, Any]], columns: Sequence[Column], fmt: str) -> None:
    if fmt == "tsv":
        for row in rows:
            sys.stdout.write("\t".join(c.value(row, False) for c in columns) + "\n")
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        writer.writerow([c.value(row, False) for c in columns])


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    from rich.cells import cell_len
    from rich.text import Text

    cells = [[c.value(r, True) for c in columns] for r in rows]
    natural = [max([cell_len(_(c.header))] + [cell_len(row[i]) for row in cells])
               for i, c in enumerate(columns)]
    shown = _fit(columns, natural, width())
    line_parts: list[Text] = []
    header = Text()
    for n, (i, w) in enumerate(shown):
        title = Text(_(columns[i].header))
        if cell_len(title.plain) > w:  # a cut column may be narrower than its name
            title.truncate(w, overflow="ellipsis")
        header.append(("  " if n else "") + _pad(title.plain, w, columns[i].right),
                      style="bold")
    line_parts.append(header)
    for row, raw in zip(cells, rows, strict=True):
        line = Text()
        for n, (i, w) in enumerate(shown):
            col = columns[i]
            cell = Text(row[i])  # a Text is never parsed as markup
            if cell_len(row[i]) > w:
                cell.truncate(w, overflow="ellipsis")
            style = col.style(str(raw.get(col.key) or "")) if col.style else ""
            line.append("  " if n else "")
            line.append(_pad(cell.plain, w, col.right), style=style)
        line_parts.append(line)
    out = console()
    for line in line_parts:
        line.rstrip()  # the last column's padding would be trailing blanks
        out.print(line, crop=False, overflow="ignore", no_wrap=True)


def _pad(text: str, w: int, right: bool) -> str:
    from rich.cells import cell_len

    gap = " " * max(0, w - cell_len(text))
    return gap + text if right else text + gap


def _fit(columns: Sequence[Column], natural: list[int], room: int) -> list[tuple[int, int]]:
    """Which columns are shown and how wide: uncut columns at full width; the cut ones share
    the rest, the most important (lowest `drop`) served first. Columns leave (highest `drop`
    first) while the line would not fit, or while a column's `want` could not be met."""
    keep = list(range(len(columns)))

    def minimum(i: int) -> int:
        return natural[i] if not columns[i].cut else min(natural[i], columns[i].minimum)

    def layout() -> dict[int, int]:
        widths = {i: minimum(i) for i in keep}
        spare = room - sum(widths.values()) - 2 * (len(keep) - 1)
        for i in sorted((i for i in keep if columns[i].cut),
                        key=lambda i: (columns[i].drop, natural[i])):
            give = max(0, min(natural[i] - widths[i], spare))
            widths[i] += give
            spare -= give
        return widths

    while True:
        droppable = [i for i in keep if columns[i].drop]
        too_wide = sum(minimum(i) for i in keep) + 2 * (len(keep) - 1) > room
        widths = layout()
        starved = any(widths[i] < min(columns[i].want, natural[i]) for i in keep)
        if not droppable or not (too_wide or starved):
            break  # numbers and dates are never cut: a line may be wider than the terminal
        keep.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    return [(i, widths[i]) for i in keep]


def console(stderr: bool = False):
    """A console that prints text as given: no markup, no highlighting, no wrapping."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True,
                   no_color=bool(os.environ.get("NO_COLOR")) or None)


def echo(text: str, err: bool = False) -> None:
    """One line of CLI output whose mail-derived parts went through mail_text()."""
    typer.echo(text, err=err)


def show_lines(lines: Sequence[Any], no_pager: bool = False) -> None:
    """Print rich Texts (never markup), through the pager on a terminal."""
    if no_pager or not sys.stdout.isatty():
        out = console()
        for line in lines:
            out.print(line, crop=False, overflow="ignore")
        return
    out = console()
    with out.capture() as captured:
        for line in lines:
            out.print(line, crop=False, overflow="ignore")
    page(captured.get())


# ---- pager --------------------------------------------------------------------------------


def page(text: str, no_pager: bool = False) -> None:
    """Through $PAGER (default `less -FRX`) when stdout is a terminal; straight out otherwise."""
    if no_pager or not sys.stdout.isatty():
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    command = os.environ.get("PAGER")
    if command is None:
        command = "less" if shutil.which("less") else ""
    if not command.strip() or command.strip() == "cat":
        sys.stdout.write(text)
        return
    from mailtix import secrets

    env = secrets.child_environment()
    env.setdefault("LESS", "FRX")
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        sys.stdout.write(text)
        return
    assert proc.stdin is not None
    # Ctrl-C in the pager belongs to the pager (less uses it to stop a search), as with git.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc.stdin.write(text.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:  # the reader quit the pager early
        pass
    finally:
        proc.wait()
        signal.signal(signal.SIGINT, previous)
