"""Language and time: German and English output chosen by LANG or [general] language, a
catalogue that misses no message, the account's language for its autoreply, times in the
local zone ([general] timezone overrides TZ), Date: headers with the local offset, and
--since read in local time."""

from __future__ import annotations

import ast
import email
import json
import os
import re
import time
from email import policy
from pathlib import Path

import pytest
from servers import simple_message

import mailtix
from mailtix import locale as mlocale
from mailtix.cli.output import utc_arg

PO = Path(mailtix.__file__).parent / "locale" / "de" / "LC_MESSAGES" / "mailtix.po"


def source_messages() -> dict[str, str]:
    """Every string literal passed to _() or N_() in mailtix/, with where it is."""
    found: dict[str, str] = {}
    for path in sorted(Path(mailtix.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("_", "N_") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, f"{path.name}:{node.lineno}")
    return found


def test_the_german_catalogue_misses_no_message():
    catalogue = mlocale.read_po(PO)
    messages = source_messages()
    assert len(messages) > 50
    missing = {m: where for m, where in messages.items() if m not in catalogue}
    assert not missing, f"add these to {PO}: {missing}"
    stale = set(catalogue) - set(messages)
    assert not stale, f"no longer used, remove from {PO}: {stale}"
    for msgid, msgstr in catalogue.items():
        fields = sorted(re.findall(r"\{[^}]*\}", msgid))
        assert sorted(re.findall(r"\{[^}]*\}", msgstr)) == fields, msgid


def test_unknown_messages_and_fuzzy_entries_fall_back_to_english(tmp_path):
    po = tmp_path / "x.po"
    po.write_text('msgid ""\nmsgstr "Language: de\\n"\n\n#, fuzzy\nmsgid "a"\nmsgstr "A"\n\n'
                  'msgid "b"\nmsgstr ""\n"B"\n"B"\n\nmsgid "c"\nmsgstr ""\n')
    assert mlocale.read_po(po) == {"b": "BB"}
    assert mlocale.translate("never translated", "de") == "never translated"
    assert mlocale.translate("no tickets match", "de") == "keine passenden Tickets"


@pytest.fixture
def speech(monkeypatch):
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    mlocale.configure()


@pytest.fixture
def zone(monkeypatch):
    original = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if original is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = original
    time.tzset()
    mlocale.configure()


def test_language_from_the_environment(speech):
    for value, expected in (("de_DE.UTF-8", "de"), ("de_AT@euro", "de"), ("C", "en"),
                            ("fr_FR.UTF-8", "en"), ("", "en")):
        speech.setenv("LANG", value)
        assert mlocale.language() == expected, value
    speech.setenv("LANGUAGE", "fr:de")
    assert mlocale.language() == "de", "LANGUAGE is a list of preferences"
    mlocale.configure(language="en")
    assert mlocale.language() == "en", "[general] language wins"


@pytest.fixture
def desk(dovecot, mailbox_account, cli):
    def make(general: str = "") -> str:
        user, _ = mailbox_account(general=general)
        dovecot.deliver(user, simple_message(subject="Drucker klemmt", message_id="<d1@x.org>",
                                             Date="Sun, 22 Nov 2026 10:00:00 +0000"))
        assert cli("run").exit_code == 0
        return json.loads(cli("ticket", "list", "--json").stdout)[0]["number"]

    return make


def test_german_under_lang_de_and_english_under_lang_c(desk, cli, speech):
    number = desk()
    speech.setenv("COLUMNS", "100")
    speech.setenv("LANG", "de_DE.UTF-8")
    german = cli("ticket", "list", "--format", "table").stdout
    assert german.split()[:2] == ["Nummer", "Status"] and "Betreff" in german
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", german), german
    shown = cli("ticket", "show", number).stdout
    assert "Priorität normal" in shown and "Warteschlange" in shown
    assert "Status new" in shown, "status values stay as typed on the command line"
    speech.setenv("LANG", "C")
    english = cli("ticket", "list", "--format", "table").stdout
    assert english.split()[:2] == ["number", "status"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", english)
    assert "no tickets match" in cli("ticket", "list", "--queue", "none", "--format",
                                     "table").stdout


def test_general_language_overrides_the_environment(desk, cli, speech, cfgdir):
    desk(general='language = "de"')
    speech.setenv("LANG", "C")
    out = cli("ticket", "list", "--format", "table").stdout
    assert out.startswith("Nummer")
    bad = cfgdir / "config.toml"
    bad.write_text(bad.read_text().replace('language = "de"', 'language = "fr"'))
    result = cli("ticket", "list")
    assert result.exit_code == 3 and "general.language" in result.output


@pytest.mark.parametrize("tz,shown", [("Europe/Berlin", "11:00"), ("Asia/Tokyo", "19:00")])
def test_times_are_shown_in_the_local_zone(desk, cli, zone, tz, shown):
    number = desk()
    zone(tz)
    assert f"2026-11-22 {shown}" in cli("ticket", "show", number).stdout
    listed = cli("ticket", "list").stdout.rstrip("\n").split("\t")[-1]
    offset = "+01:00" if tz == "Europe/Berlin" else "+09:00"
    assert listed.endswith(offset), "tsv carries ISO times with the local offset"


def test_general_timezone_overrides_tz(desk, cli, zone, cfgdir):
    number = desk(general='timezone = "Asia/Tokyo"')
    zone("Europe/Berlin")
    assert "2026-11-22 19:00" in cli("ticket", "show", number).stdout
    cfg = cfgdir / "config.toml"
    cfg.write_text(cfg.read_text().replace("Asia/Tokyo", "Mars/Olympus"))
    result = cli("status")
    assert result.exit_code == 3 and "general.timezone" in result.output


def test_date_header_carries_the_local_offset(mailbox_account, smtp, cli, cfgdir, zone):
    mailbox_account(extra=f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                          'tls = "none"\n')
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "note.txt").write_text("subject: Hi\n---\nHello\n")
    zone("Asia/Tokyo")
    raw = cli("send", "--to", "a@example.org", "--template", "note", "--dry-run").stdout
    date = email.message_from_string(raw, policy=policy.default)["Date"]
    assert date.endswith("+0900"), date
    zone("UTC")
    cfg = cfgdir / "config.toml"
    cfg.write_text('[general]\ntimezone = "Asia/Kolkata"\n' + cfg.read_text())
    raw = cli("send", "--to", "a@example.org", "--template", "note", "--dry-run").stdout
    assert email.message_from_string(raw, policy=policy.default)["Date"].endswith("+0530")


def test_since_is_read_in_local_time(zone):
    zone("Asia/Tokyo")
    assert utc_arg("2026-11-22", "--since") == "2026-11-21T15:00:00+00:00"
    assert utc_arg("2026-11-22 14:30", "--since") == "2026-11-22T05:30:00+00:00"
    assert utc_arg("2026-11-22T14:30+01:00", "--since") == "2026-11-22T13:30:00+00:00"
    mlocale.configure(timezone="Europe/Berlin")
    assert utc_arg("2026-11-22", "--until") == "2026-11-21T23:00:00+00:00"


def test_log_since_in_local_time(desk, cli, zone):
    desk()
    zone("Pacific/Kiritimati")  # UTC+14: today's local date may be tomorrow in UTC
    from datetime import datetime, timedelta

    today = datetime.now().strftime("%Y-%m-%d")
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d")
    assert json.loads(cli("log", "--since", today, "--json").stdout)
    assert json.loads(cli("log", "--since", tomorrow, "--json").stdout) == []
    assert cli("log", "--since", "yesterday").exit_code == 2


AUTO = "[accounts.support.autoresponder]\nenabled = true\n"


@pytest.mark.parametrize("setting,german", [
    ('language = "de"\n', True), ("", False), ("GENERAL", True)])
def test_autoreply_speaks_the_accounts_language(dovecot, mailbox_account, smtp, cli, speech,
                                                setting, german):
    speech.setenv("LANG", "C")
    user, _ = mailbox_account(
        extra=(setting if setting != "GENERAL" else "") + AUTO
        + f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n',
        general='language = "de"' if setting == "GENERAL" else "")
    cli("run")  # the autoresponder's horizon starts with the first run
    dovecot.deliver(user, simple_message(subject="Frage", sender="kunde@firma.example",
                                         Date="Mon, 23 Nov 2099 10:00:00 +0000"))
    assert cli("run").exit_code == 0
    answers = [m for m in smtp.messages if "kunde@firma.example" in m["to"]]
    assert len(answers) == 1
    text = email.message_from_bytes(answers[0]["raw"], policy=policy.default) \
        .get_body(("plain",)).get_content()
    assert ("vielen Dank für Ihre Nachricht" in text) == german, text
    assert ("thank you for your message" in text) == (not german), text
