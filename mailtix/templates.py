"""Templates: jinja2 in its sandbox with StrictUndefined; files in the config dir's
templates/ folder first, then the built-in ones.

A template is NAME.txt: front matter (`subject: …`), a line `---`, then the text body; an
optional NAME.html beside it is the HTML alternative. The seed systems' placeholders {TICKET}
and {BETREFF} still work (ticket number, subject of the incoming mail). `{% include %}` reads
from the templates/ folder only.

Any failure while rendering — a syntax error, an undefined name, the sandbox, a missing
include, a TypeError in an expression — is a TemplateError naming the template: callers
(the autoresponder above all) never see a raw jinja2 or Python exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mailtix.config.model import Account, Config
from mailtix.errors import ExitCode, MailtixError, UsageError

LEGACY = {"{TICKET}": "{{ ticket.number }}", "{BETREFF}": "{{ message.subject }}"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TemplateError(MailtixError):
    exit_code = ExitCode.USAGE


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None


@dataclass
class Source:
    name: str
    text: str
    html: str | None
    origin: str
    folder: str = ""  # where {% include %} looks: the config dir's templates/


def user_dir(config_path: Path) -> Path:
    return config_path.parent / "templates"


def builtin_names() -> list[str]:
    folder = resources.files("mailtix") / "templates"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def names(config_path: Path) -> list[tuple[str, str]]:
    out = {n: "built-in" for n in builtin_names()}
    folder = user_dir(config_path)
    if folder.is_dir():
        out.update({p.stem: str(p) for p in folder.glob("*.txt")})
    return sorted(out.items())


def load(config_path: Path, name: str, language: str = "") -> Source:
    """NAME in the config dir, then built in; in `language` first (NAME.de.txt in the config
    dir, templates/de/NAME.txt built in), so a German account answers in German."""
    if not NAME.match(name):
        raise UsageError(f"bad template name {name!r}")
    lang = language if language and language != "en" else ""
    path = user_dir(config_path) / f"{name}.txt"
    for candidate in ([path.with_name(f"{name}.{lang}.txt")] if lang else []) + [path]:
        if candidate.exists():
            html = candidate.with_suffix(".html")
            return Source(name, read(candidate), read(html) if html.exists() else None,
                          str(candidate), str(candidate.parent))
    folder = resources.files("mailtix") / "templates"
    for base in ([folder / lang] if lang else []) + [folder]:
        builtin = base / f"{name}.txt"
        if builtin.is_file():
            html = base / f"{name}.html"
            return Source(name, builtin.read_text(),
                          html.read_text() if html.is_file() else None,
                          "built-in" + (f" ({lang})" if base is not folder else ""),
                          str(user_dir(config_path)))
    known = ", ".join(n for n, _ in names(config_path)) or "none"
    raise UsageError(f"no template named {name!r} (templates: {known})",
                     hint=f"add one as {path}")


def read(path: Path) -> str:
    """A template file as UTF-8 text, or a TemplateError naming it."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template file {path} is not UTF-8 text (byte {exc.start})",
                            hint="save it as UTF-8") from None
    except OSError as exc:
        raise TemplateError(f"cannot read the template file {path}: {exc.strerror}") from None


@lru_cache(maxsize=8)
def _env(folder: str = "", lenient: bool = False):
    from jinja2 import ChainableUndefined, FileSystemLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Lenient(ChainableUndefined):
        """For checking a template before its own variables are known: an unknown name
        takes any attribute, call, operator or comparison, so only real faults remain."""

        def _anything(self, *args: Any, **kwargs: Any) -> Lenient:
            return self

        __call__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _anything
        __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = _anything
        __rmod__ = __pow__ = __rpow__ = __pos__ = __neg__ = __abs__ = __round__ = _anything
        __lt__ = __le__ = __gt__ = __ge__ = _anything  # type: ignore[assignment]

        def __int__(self) -> int:
            return 0

        __index__ = __int__

        def __float__(self) -> float:
            return 0.0

        def __format__(self, spec: str) -> str:
            return ""

    loader = FileSystemLoader(folder) if folder else None
    return ImmutableSandboxedEnvironment(undefined=Lenient if lenient else StrictUndefined,
                                         autoescape=False, keep_trailing_newline=True,
                                         loader=loader)


@lru_cache(maxsize=64)
def _compiled(text: str, folder: str = "", lenient: bool = False):
    """Compile once per distinct source: a batch renders one template thousands of times."""
    return _env(folder, lenient).from_string(_legacy(text))


def _legacy(text: str) -> str:
    for old, new in LEGACY.items():
        text = text.replace(old, new)
    return text


def split(source: Source) -> tuple[str, str]:
    head, sep, body = source.text.partition("\n---\n")
    if not sep:
        raise TemplateError(f"template {source.name} ({source.origin}): no '---' line after "
                            "the front matter", hint="start with 'subject: …', then '---'")
    subject = ""
    for line in head.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "subject":
            subject = value.strip()
        elif line.strip():
            raise TemplateError(f"template {source.name}: unknown front-matter line {line!r}")
    return subject, body


def render(source: Source, variables: dict[str, Any]) -> Rendered:
    return _render(source, variables, lenient=False)


def check(source: Source, variables: dict[str, Any]) -> Rendered:
    """Render against sample variables before a template is saved: names the samples do not
    have pass (a document's own --var names), every other fault is a TemplateError."""
    return _render(source, variables, lenient=True)


def samples(config: Config, account: Account | None) -> dict[str, Any]:
    """Variables as the autoresponder and `ticket reply` pass them, with made-up values."""
    from mailtix.outgoing import variables

    ticket = {"id": 1, "number": "20260101-0001", "subject": "Printer is broken",
              "status": "new", "priority": "normal", "queue": "support", "project": "",
              "assignee": "", "account": account.name if account else "", "doc_ref": "",
              "created_at": "2026-01-01T10:00:00+00:00",
              "updated_at": "2026-01-01T10:00:00+00:00"}
    message = {"subject": "Printer is broken", "from": "jane@customer.example",
               "from_name": "Jane Doe", "date": "2026-01-01T10:00:00+00:00"}
    contact = {"email": "jane@customer.example", "name": "Jane Doe"}
    if account is None:
        tag = config.general.subject_tag.replace("{number}", ticket["number"])
        return {"ticket": {**ticket, "tag": tag}, "message": message, "contact": contact,
                "account": {"name": "support", "email": "support@example.com",
                            "display_name": "Support"}}
    return variables(ticket, config, account, message=message, contact=contact)


def _render(source: Source, variables: dict[str, Any], *, lenient: bool) -> Rendered:
    subject_src, body_src = split(source)
    out = []
    header_lines = source.text.partition("\n---\n")[0].count("\n") + 2
    for label, text, offset in (("subject", subject_src, 0), ("body", body_src, header_lines),
                                ("html", source.html, 0)):
        if text is None:
            out.append(None)
            continue
        try:
            out.append(_compiled(text, source.folder, lenient).render(**variables))
        except Exception as exc:  # jinja2 passes Python's own errors through: one kind here
            raise _error(source, label, offset, exc) from None
    subject = " ".join(str(out[0]).split())
    return Rendered(subject, str(out[1]), out[2])


def _error(source: Source, label: str, offset: int, exc: Exception) -> TemplateError:
    from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    where = f"template {source.name} ({source.origin}), {label}"
    if isinstance(exc, TemplateNotFound):
        folder = source.folder or "the templates folder"
        return TemplateError(f"{where}: includes {exc.name!r}, which is not in {folder}",
                             hint=f"add {exc.name} to {folder}, or remove the include")
    if isinstance(exc, TemplateSyntaxError):
        if exc.name:  # in an included file: its own line numbers
            return TemplateError(f"{where}: {exc.name} line {exc.lineno}: {exc.message}")
        return TemplateError(f"{where} line {(exc.lineno or 0) + offset}: {exc.message}")
    if isinstance(exc, UndefinedError):
        return TemplateError(f"{where}: {exc.message}", hint="pass it with --var NAME=VALUE")
    if isinstance(exc, SecurityError):
        return TemplateError(f"{where}: refused by the sandbox: {exc}")
    if isinstance(exc, TemplateError):
        return exc
    return TemplateError(f"{where}: {type(exc).__name__}: {exc}")
