"""Templates: jinja2 in its sandbox with StrictUndefined; files in the config dir's
templates/ folder first, then the built-in ones.

A template is NAME.txt: front matter (`subject: …`), a line `---`, then the text body; an
optional NAME.html beside it is the HTML alternative. The seed systems' placeholders {TICKET}
and {BETREFF} still work (ticket number, subject of the incoming mail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mailtix.errors import MailtixError, UsageError

LEGACY = {"{TICKET}": "{{ ticket.number }}", "{BETREFF}": "{{ message.subject }}"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TemplateError(MailtixError):
    pass


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
            return Source(name, candidate.read_text(),
                          html.read_text() if html.exists() else None, str(candidate))
    folder = resources.files("mailtix") / "templates"
    for base in ([folder / lang] if lang else []) + [folder]:
        builtin = base / f"{name}.txt"
        if builtin.is_file():
            html = base / f"{name}.html"
            return Source(name, builtin.read_text(),
                          html.read_text() if html.is_file() else None,
                          "built-in" + (f" ({lang})" if base is not folder else ""))
    known = ", ".join(n for n, _ in names(config_path)) or "none"
    raise UsageError(f"no template named {name!r} (templates: {known})",
                     hint=f"add one as {path}")


@lru_cache(maxsize=1)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                         keep_trailing_newline=True)


@lru_cache(maxsize=64)
def _compiled(text: str):
    """Compile once per distinct source: a batch renders one template thousands of times."""
    return _env().from_string(_legacy(text))


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
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    subject_src, body_src = split(source)
    out = []
    header_lines = source.text.partition("\n---\n")[0].count("\n") + 2
    for label, text, offset in (("subject", subject_src, 0), ("body", body_src, header_lines),
                                ("html", source.html, 0)):
        if text is None:
            out.append(None)
            continue
        try:
            out.append(_compiled(text).render(**variables))
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template {source.name} ({source.origin}), {label} line "
                                f"{(exc.lineno or 0) + offset}: {exc.message}") from None
        except UndefinedError as exc:
            raise TemplateError(f"template {source.name} ({source.origin}), {label}: "
                                f"{exc.message}", hint="pass it with --var NAME=VALUE") from None
        except SecurityError as exc:
            raise TemplateError(f"template {source.name}: refused by the sandbox: {exc}") from None
    subject = " ".join(str(out[0]).split())
    return Rendered(subject, str(out[1]), out[2])
