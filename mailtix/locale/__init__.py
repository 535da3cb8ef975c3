"""Language and time zone of what mailtix says: gettext catalogues (English source strings,
German translation) and the zone that times are shown and stamped in.

The catalogues are kept as `.po` sources only and read by a small pure-Python loader at first
use, so a clean checkout works without msgfmt or a build step. English is the source language;
a message a catalogue lacks falls back to English (tests/test_output_i18n.py fails when one is
missing). This package is a leaf: the mail, config and CLI layers may all import it.
"""

from __future__ import annotations

import ast
import gettext
import os
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "de")
DOMAIN = "mailtix"
_HERE = Path(__file__).parent


class _Settings:
    language: str = ""  # "" = from the environment
    zone: tzinfo | None = None  # None = the system's local zone (TZ)


settings = _Settings()


def configure(language: str = "", timezone: str = "") -> None:
    """Apply [general] language / timezone ("" = from the environment)."""
    settings.language = language
    settings.zone = zone_named(timezone) if timezone else None


def zone_named(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def valid_zone(name: str) -> bool:
    from zoneinfo import ZoneInfoNotFoundError

    try:
        zone_named(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def now() -> datetime:
    """Now in the local zone, with its offset (for outgoing Date: headers)."""
    return datetime.now(settings.zone) if settings.zone else datetime.now().astimezone()


def to_local(when: datetime) -> datetime:
    return when.astimezone(settings.zone) if settings.zone else when.astimezone()


def as_local(when: datetime) -> datetime:
    """A naive time the user typed, read as local time."""
    if when.tzinfo is not None:
        return when
    if settings.zone is not None:
        return when.replace(tzinfo=settings.zone)
    return when.astimezone()  # naive means local to datetime.astimezone()


def language(preferred: str = "") -> str:
    """The language to speak: the argument, [general] language, then LANGUAGE, LC_ALL,
    LC_MESSAGES, LANG (as gettext reads them); English when none names a known one."""
    candidates = [preferred, settings.language]
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            candidates += value.split(":") if var == "LANGUAGE" else [value]
            break
    for value in candidates:
        code = value.split(".")[0].split("@")[0].split("_")[0].lower() if value else ""
        if code in LANGUAGES:
            return code
        if code in ("c", "posix"):
            return "en"
    return "en"


def _(message: str) -> str:
    """The translation of an English message in the current language."""
    return translation(language()).gettext(message)


def N_(message: str) -> str:  # noqa: N802  (the gettext convention)
    """Marks a message for the catalogues that is translated later (column headers)."""
    return message


def translate(message: str, lang: str) -> str:
    return translation(language(lang)).gettext(message)


@lru_cache(maxsize=8)
def translation(lang: str) -> gettext.NullTranslations:
    po = _HERE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == "en" or not po.is_file():
        return gettext.NullTranslations()
    return _Catalogue(read_po(po))


class _Catalogue(gettext.NullTranslations):
    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self._messages = messages

    def gettext(self, message: str) -> str:
        return self._messages.get(message) or message


def read_po(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file; fuzzy and untranslated entries are left out."""
    out: dict[str, str] = {}
    entry: dict[str, str] = {}
    field = ""
    fuzzy = flagged = False  # flagged: a "#, fuzzy" seen for the entry that starts next

    def finish() -> None:
        if entry.get("msgid") and entry.get("msgstr") and not fuzzy:
            out[entry["msgid"]] = entry["msgstr"]

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                flagged = True
            continue
        if line.startswith('"'):
            entry[field] = entry.get(field, "") + ast.literal_eval(line)
            continue
        key, _sep, rest = line.partition(" ")
        if key == "msgid":
            finish()
            entry, fuzzy, flagged = {}, flagged, False
        field = key
        entry[field] = ast.literal_eval(rest)
    finish()
    return out
