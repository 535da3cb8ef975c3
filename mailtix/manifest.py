"""Manifests as ERPs export them: CSV in UTF-8 (with or without BOM), UTF-16 or cp1252,
separated by `,` `;` or tab, with the ERP's own column names mapped to ours; or JSON lines.

Reading and validation stream: one row in memory at a time, so a manifest of 100,000 rows
costs what one of 100 does (only the set of keys seen grows, for the duplicate check).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailtix import templates
from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError, UsageError
from mailtix.mail.addresses import split_address_list as split_addresses

RESERVED = ("to", "cc", "bcc", "attachments", "doc_ref")
ADDRESS_FIELDS = ("to", "cc", "bcc")
DELIMITERS = (",", ";", "\t")
SNIFF_CHARS = 16 * 1024
SNIFF_ROWS = 50


class ManifestError(MailtixError):
    exit_code = UsageError.exit_code

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the manifest; nothing was sent:\n"
                         + "\n".join(problems[:200]),
                         hint="fix the rows named above and run the same command again")


@dataclass(frozen=True)
class Layout:
    """How to read a manifest; None means detect."""

    encoding: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # our name -> the file's column
    # [documents.columns] of the config: the same, used where the file has that column (one
    # config serves several ERPs' exports)
    defaults: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    number: int  # 1-based data row (the header line is row 0 in a CSV)
    to: list[str]
    cc: list[str]
    bcc: list[str]
    attachments: list[Path]
    doc_ref: str
    vars: dict[str, str]
    digest: str = ""  # of the row as written in the file, to notice a changed row
    problems: list[str] = field(default_factory=list)  # found while reading

    @property
    def key(self) -> str:
        return self.doc_ref or f"row{self.number}"


def refuse_line_breaks(field_name: str, values: list[str]) -> None:
    """A CR/LF in an address would start a header of its own (`Bcc:`): refused, not cleaned."""
    for value in values:
        if "\r" in value or "\n" in value:
            raise UsageError(f"{field_name}: line break in {value!r}; an address is one line")


def detect_encoding(path: Path) -> str:
    """BOM first; then UTF-8 if every byte decodes; then cp1252 (what Windows ERPs write),
    and latin-1 for the five bytes cp1252 leaves undefined. One streaming pass."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        for encoding in ("utf-8", "cp1252"):
            fh.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                for chunk in iter(lambda: fh.read(1 << 16), b""):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return encoding
    return "latin-1"


def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the header into most columns while the rows below agree
    with it (csv.Sniffer guesses letters as delimiters on short samples)."""
    best, best_score = ",", (False, 0.0, 0)
    lines = sample.splitlines(keepends=True)
    if len(sample) >= SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # cut off mid-row
    for delim in DELIMITERS:
        try:
            reader = csv.reader(io.StringIO("".join(lines)), delimiter=delim)
            records = [r for r in itertools.islice(reader, SNIFF_ROWS) if r]
        except csv.Error:
            continue
        if not records:
            continue
        width = len(records[0])
        agree = sum(len(r) == width for r in records[1:]) / max(1, len(records) - 1)
        score = (width > 1, agree, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def read_manifest(path: Path, layout: Layout | None = None) -> Iterator[Row]:
    """Rows of a CSV (header line) or JSON-lines manifest; paths relative to its folder.
    Problems of a row (a short row, a line break in an address) travel with the row."""
    layout = layout or Layout()
    base = path.parent
    if path.suffix.lower() == ".xlsx":
        raise UsageError(f"{path}: Excel files are not read directly",
                         hint="save it as CSV (UTF-8 or the ERP's default) and pass that")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path, base, layout)
        return
    encoding = layout.encoding or detect_encoding(path)
    try:
        with open(path, newline="", encoding=encoding) as fh:
            delimiter = layout.delimiter or sniff_delimiter(fh.read(SNIFF_CHARS))
            fh.seek(0)
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            header = [h.strip().lstrip("\ufeff") for h in header]
            columns = _columns(path, header, layout)
            number = 0
            for record in reader:
                if not any(v.strip() for v in record):
                    continue  # blank line (Excel adds some at the end)
                number += 1
                problems = []
                surplus = record[len(header):]
                if len(record) < len(header) or any(v.strip() for v in surplus):
                    problems.append(f"has {len(record)} fields, the header has {len(header)}")
                data = dict(zip(header, record, strict=False))
                yield _row(number, data, columns, base, problems)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read the manifest {path} as {encoding}: byte "
                         f"0x{exc.object[exc.start]:02x} is not {encoding}",
                         hint="pass the file's encoding with --encoding (e.g. cp1252)"
                         ) from None
    except csv.Error as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc}") from None


def _read_jsonl(path: Path, base: Path, layout: Layout) -> Iterator[Row]:
    first = True
    with open(path, encoding=layout.encoding or "utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError([f"row {n}: not JSON: {exc}"]) from None
            if not isinstance(data, dict):
                raise ManifestError([f"row {n}: expected an object"])
            # Each object names its own fields (a cc only where there is one).
            try:
                columns = _columns(path, list(data), layout)
            except UsageError as exc:
                if first:
                    raise
                yield _row(n, {}, {}, base, [str(exc).split("; ", 1)[0].removeprefix(
                    f"{path}: ")])
                continue
            first = False
            yield _row(n, data, columns, base, [])


def _columns(path: Path, header: list[str], layout: Layout) -> dict[str, str]:
    """Our field name -> the header as written. Names match case-insensitively; a mapped or
    required column that is not there is one error listing the columns found."""
    found = {h.lower(): h for h in header if h}
    listed = ", ".join(h for h in header if h) or "none"
    out: dict[str, str] = {}
    missing = []
    for ours, theirs in layout.columns.items():
        if theirs.strip().lower() in found:
            out[ours.lower() if ours.lower() in RESERVED else ours] = found[
                theirs.strip().lower()]
        else:
            missing.append(f"{ours}={theirs}")
    for ours, theirs in layout.defaults.items():
        name = ours.lower() if ours.lower() in RESERVED else ours
        if name not in out and theirs.strip().lower() in found:
            out[name] = found[theirs.strip().lower()]
    if missing:
        raise UsageError(f"{path}: no column {', '.join(missing)}; columns found: {listed}",
                         hint="name the file's columns exactly (case does not matter)")
    for name in RESERVED:
        if name not in out and name in found:
            out[name] = found[name]
    if "to" not in out:
        raise UsageError(f"{path}: no column 'to' (the recipient); columns found: {listed}",
                         hint="map it, e.g. --map to=E-Mail, or [documents.columns] in the "
                              "config")
    return out


def _row(n: int, data: dict[str, Any], columns: dict[str, str], base: Path,
         problems: list[str]) -> Row:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    def listed(name: str, addresses: bool) -> list[str]:
        value = data.get(columns.get(name, "\0"))
        if isinstance(value, list):
            return [text(v).strip() for v in value if text(v).strip()]
        if addresses:
            if "\r" in text(value) or "\n" in text(value):
                return [text(value)]  # refused whole below: split, "Bcc:" would read as a group
            return split_addresses(text(value))
        return [v.strip() for v in text(value).replace(";", ",").split(",") if v.strip()]

    fields = {name: listed(name, name in ADDRESS_FIELDS) for name in ADDRESS_FIELDS}
    for name, values in fields.items():
        if any("\r" in v or "\n" in v for v in values):
            problems.append(f"{name}: line break in an address (it would start a header)")
    written = listed("attachments", False)
    files = [Path(p) if Path(p).is_absolute() else base / p for p in written]
    doc_ref = text(data.get(columns.get("doc_ref", "\0"))).strip()
    if "\n" in doc_ref or "\r" in doc_ref:
        problems.append("doc_ref: line break")
    used = {columns[name] for name in RESERVED if name in columns}
    extra: dict[str, str] = {}
    for name, value in data.items():
        if name and name not in used:
            extra[name] = text(value)
            extra.setdefault(name.lower(), text(value))
    for ours, theirs in columns.items():
        if ours not in RESERVED:
            extra[ours] = text(data.get(theirs))
    digest = hashlib.sha256(json.dumps(
        [fields["to"], fields["cc"], fields["bcc"], written, doc_ref, extra],
        sort_keys=True).encode()).hexdigest()
    return Row(n, fields["to"], fields["cc"], fields["bcc"], files, doc_ref, extra, digest,
               problems)


@dataclass
class Checked:
    rows: int
    digest: str  # of every row as written, in order: the batch id when none is given
    without_ref: int  # rows keyed by batch + row number only


def validate(config: Config, path: Path, template: str, account: Account | None,
             layout: Layout | None = None) -> Checked:
    """Check every row before anything is sent, in one streaming pass; every problem of
    every row is collected, then raised together."""
    from mailtix.mail.compose import addresses

    src = templates.load(config.path, template, config.language_of(account))
    in_subject = subject_names(src)
    problems: list[str] = []
    keys: dict[str, int] = {}
    digest = hashlib.sha256()
    count = without_ref = 0
    for row in read_manifest(path, layout):
        count += 1
        digest.update(row.digest.encode())
        without_ref += not row.doc_ref
        where = f"row {row.number}"
        problems += [f"{where}: {p}" for p in row.problems]
        if row.problems and any(p.startswith("has ") for p in row.problems):
            continue  # shifted fields: the rest would only repeat the same problem
        if not row.to:
            problems.append(f"{where}: 'to' is empty")
        for field_name, values in (("to", row.to), ("cc", row.cc), ("bcc", row.bcc)):
            if any(p.startswith(f"{field_name}: line break") for p in row.problems):
                continue
            for value in values:
                try:
                    addresses([value])
                except UsageError as exc:
                    problems.append(f"{where}: {field_name}: {exc}")
        for file in row.attachments:
            if not file.is_file():
                problems.append(f"{where}: attachment not found: {file}")
            else:
                try:
                    with open(file, "rb") as fh:
                        fh.read(1)
                except OSError as exc:
                    problems.append(f"{where}: attachment not readable: {file}: "
                                    f"{exc.strerror}")
        if row.doc_ref in keys:  # row-number keys are unique by construction
            problems.append(f"{where}: duplicate of row {keys[row.doc_ref]} (doc_ref "
                            f"{row.doc_ref})")
        elif row.doc_ref:
            keys[row.doc_ref] = row.number
        for name in sorted(in_subject):
            value = row.vars.get(name, "")
            if "\n" in value or "\r" in value:
                problems.append(f"{where}: {name!r} has a line break and is used in the "
                                "subject")
        try:
            templates.render(src, row_variables(config, account, row))
        except MailtixError as exc:
            problems.append(f"{where}: {exc}")
    if count == 0:
        problems.append("the manifest has no rows")
    if problems:
        raise ManifestError(problems)
    return Checked(count, digest.hexdigest(), without_ref)


def subject_names(src: templates.Source) -> set[str]:
    """Variables the subject line uses: a line break in one of them is an error, since a
    header is one line (compose would fold it away silently)."""
    from jinja2 import Environment, TemplateSyntaxError, meta

    subject, _body = templates.split(src)
    try:
        return set(meta.find_undeclared_variables(Environment().parse(subject)))
    except TemplateSyntaxError:
        return set()  # render reports it with the template's name


def row_variables(config: Config, account: Account | None, row: Row) -> dict[str, Any]:
    from mailtix.outgoing import variables

    extra = {**row.vars, "doc_ref": row.doc_ref, "to": ", ".join(row.to)}
    if account is None:
        return extra
    return variables(None, config, account, extra=extra)
