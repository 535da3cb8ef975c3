"""What the CLI prints: every list command at widths 60, 80 and 200 and piped, in every
--format; mail-derived text shown literally by every command; ticket show through $PAGER on a
terminal only. The store is filled by real ingestion over IMAP (Dovecot) and a real archive run.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from email.message import EmailMessage
from pathlib import Path

import pytest
from rich.cells import cell_len
from servers import simple_message

from mailtix.cli.output import mail_text

LONG = "Rechnung " + "sehr lange Betreffzeile " * 10 + "ENDE"
HOSTILE_SUBJECT = ("[/alt] [bold]x[/bold] [link=https://evil.example]click[/link] "
                   "\x9b2J [notmuch] \u202eevil")
HOSTILE_SENDER = "x@evil.example[/]"
HOSTILE_FILE = "[red]plan[/red]\x9b.pdf"
# What must appear, character for character, wherever the subject is shown.
LITERAL = ["[/alt]", "[bold]x[/bold]", "[link=https://evil.example]click[/link]", "[notmuch]"]


def hostile_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = HOSTILE_SENDER
    msg["To"] = "support@example.com"
    msg["Subject"] = HOSTILE_SUBJECT
    msg["Date"] = "Sun, 22 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<evil1@evil.example>"
    msg["X-Spam-Flag"] = "YES"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("body [bold]B[/bold] [link=https://evil.example]here[/link]\n")
    msg.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf",
                       filename=HOSTILE_FILE)
    return msg.as_bytes()


@pytest.fixture
def filled(dovecot, mailbox_account, smtp, cli, cfgdir):
    """Tickets (one hostile, one with a long subject), an archive, an outbox row, a document."""
    user, _ = mailbox_account(
        extra="[accounts.support.archive]\nenabled = true\n"
              f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n')
    dovecot.deliver(user, hostile_message())
    dovecot.deliver(user, simple_message(subject=LONG, sender="jane@customer.example",
                                         message_id="<long@x.org>"))
    dovecot.deliver(user, simple_message(subject="Printer jams", sender="tom@buyer.example",
                                         message_id="<p1@x.org>"))
    assert cli("run").exit_code == 0
    assert cli("archive", "run").exit_code == 0
    rows = json.loads(cli("ticket", "list", "--all", "--json").stdout)
    numbers = {r["subject"]: r["number"] for r in rows}
    body = cfgdir / "reply.txt"
    body.write_text("On its way.\n")
    assert cli("ticket", "reply", numbers["Printer jams"], "--body-file", str(body),
               "--queue").exit_code == 0
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "invoice.txt").write_text("subject: Invoice {{ ref }}\n---\nHi\n")
    assert cli("send", "--to", "buyer@customer.example", "--template", "invoice", "--var",
               "ref=INV-2026-0042", "--doc-ref", "INV-2026-0042", "--queue").exit_code == 0
    return numbers


LISTS = {
    "ticket list": ["ticket", "list", "--all"],
    "ticket search": ["ticket", "search", "Printer"],
    "contact list": ["contact", "list"],
    "contact show": ["contact", "show", "jane@customer.example"],
    "outbox list": ["outbox", "list"],
    "documents list": ["documents", "list"],
    "archive list": ["archive", "list"],
    "archive search": ["archive", "search", "Printer"],
    "status": ["status"],
    "log": ["log"],
    "account list": ["account", "list"],
    "template list": ["template", "list"],
}


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_every_list_fits_the_terminal_one_line_per_row(filled, cli, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    for name, args in LISTS.items():
        table = cli(*args, "--format", "table")
        assert table.exit_code == 0, (name, table.output)
        rows = json.loads(cli(*args, "--format", "json").stdout)
        if name == "status":
            rows = rows["accounts"]
        lines = table.stdout.splitlines()
        assert len(lines) >= len(rows) + 1, (name, lines)
        body = lines[1:len(rows) + 1]
        for line in lines:
            assert cell_len(line) <= columns, (name, columns, line)
            assert not set(line) & set("│┃┏━┡╇─┼"), "no box drawing"
        if name == "ticket list":
            for row in rows:
                # the number and the date whole; the subject ellipsised on narrow terminals
                assert any(row["number"] in line and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line)
                           for line in body), (columns, row["number"], body)
            assert any("…" in line for line in body) and not any("ENDE" in line for line in body)
            whole = any("[notmuch]" in line for line in body)
            assert whole == (columns == 200), "a 90-character subject fits only at 200"


def test_piped_lists_are_tab_separated_without_decoration(filled, cli):
    for name, args in LISTS.items():
        piped = cli(*args)
        assert piped.exit_code == 0, (name, piped.output)
        lines = piped.stdout.splitlines()
        assert lines, name
        widths = {len(line.split("\t")) for line in lines}
        assert len(widths) == 1 and widths.pop() > 1, (name, lines)
        assert "\x1b" not in piped.stdout and "…" not in piped.stdout, name
    long_row = [line for line in cli("ticket", "list").stdout.splitlines() if "ENDE" in line]
    assert LONG in long_row[0].split("\t"), "never cut when piped"


def test_csv_and_json_carry_the_same_rows(filled, cli):
    rows = json.loads(cli("ticket", "list", "--all", "--format", "json").stdout)
    parsed = list(csv.DictReader(io.StringIO(cli("ticket", "list", "--all", "--format",
                                                  "csv").stdout)))
    assert [r["number"] for r in parsed] == [r["number"] for r in rows]
    assert parsed[0]["last_activity_at"].startswith(rows[0]["last_activity_at"][:4])
    bad = cli("ticket", "list", "--format", "xml")
    assert bad.exit_code == 2 and "--format" in bad.output


def test_limited_lists_say_how_many_there_are(filled, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    table = cli("ticket", "list", "--all", "--limit", "2", "--format", "table")
    assert table.stdout.splitlines()[-1].startswith("2 of 3 shown")
    piped = cli("ticket", "list", "--all", "--limit", "2")
    assert len(piped.stdout.splitlines()) == 2 and "2 of 3 shown" in piped.output
    assert "shown" not in cli("ticket", "list", "--all", "--format", "table").stdout
    assert "1 of 3 shown" in cli("archive", "list", "--limit", "1", "--format", "table").stdout


def _assert_literal(text: str, where: str) -> None:
    assert "\x9b" not in text and "\u202e" not in text and "\x1b]8" not in text, where
    assert "\\x9b2J" in text, where


def test_mail_text_is_printed_literally_by_every_command(filled, cli, monkeypatch, tmp_path,
                                                           dovecot):
    monkeypatch.setenv("COLUMNS", "400")
    number = filled[[s for s in filled if "[notmuch]" in s][0]]
    shown = {
        "ticket list": cli("ticket", "list", "--all", "--format", "table"),
        "ticket list tsv": cli("ticket", "list", "--all"),
        "ticket list csv": cli("ticket", "list", "--all", "--format", "csv"),
        "ticket search": cli("ticket", "search", "notmuch", "--all", "--format", "table"),
        "ticket show": cli("ticket", "show", number),
        "contact list": cli("contact", "list", "--format", "table"),
        "contact show": cli("contact", "show", HOSTILE_SENDER, "--format", "table"),
        "archive list": cli("archive", "list", "--format", "table"),
        "archive search": cli("archive", "search", "notmuch", "--format", "table"),
    }
    for where, result in shown.items():
        assert result.exit_code == 0, (where, result.output)
        text = result.stdout
        if where != "contact list" and where != "contact show":
            for piece in LITERAL:
                assert piece in text, (where, piece, text)
            _assert_literal(text, where)
        if where not in ("ticket search", "contact show", "archive search"):
            assert HOSTILE_SENDER in text, (where, text)
    show = shown["ticket show"].stdout
    assert "[spam, auto_submitted]" in show or "[auto_submitted, spam]" in show
    assert "[bold]B[/bold]" in show and "[link=https://evil.example]here[/link]" in show
    assert "[red]plan[_red]\\x9b.pdf" in show, "the stored name (slash made safe), literally"
    # JSON: the C1 control and the bidi override escaped, the text otherwise whole
    raw_json = cli("ticket", "show", number, "--json").stdout
    assert "\x9b" not in raw_json and "\\u009b" in raw_json
    assert json.loads(raw_json)["subject"] == HOSTILE_SUBJECT
    saved = cli("ticket", "attachments", number, "--save", str(tmp_path / "att"))
    assert saved.exit_code == 0 and "\x9b" not in saved.stdout
    for name, args in LISTS.items():  # no list lets a raw control through, in any format
        for fmt in ("table", "tsv", "csv", "json"):
            out = cli(*args, "--format", fmt).stdout
            assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", out), (name, fmt)
    spam = cli("ticket", "spam", number, "--block-sender")
    assert spam.exit_code == 0 and HOSTILE_SENDER in spam.stdout, spam.output
    eml = tmp_path / "evil.eml"
    eml.write_bytes(hostile_message())
    explained = cli("explain", str(eml))
    assert explained.exit_code == 0
    for piece in LITERAL:
        assert piece in explained.stdout
    _assert_literal(explained.stdout, "explain")
    assert HOSTILE_SENDER in explained.stdout


def test_mail_text_neutralises_controls():
    assert mail_text("a\x1b[31mred") == "a\u241b[31mred"
    assert mail_text("x\x9by\x85z\x7f") == "x\\x9by\\x85z\u2421"
    assert mail_text("one\ntwo\tthree\r\n") == "one two three "
    assert mail_text("keep\nlines\ttabs", multiline=True) == "keep\nlines\ttabs"
    assert mail_text("\u202egnp.exe") == "\\u202egnp.exe"
    assert mail_text(None) == ""


def _on_a_tty(args: list[str], env: dict[str, str], columns: int = 0) -> str:
    """Run mailtix with stdout on a pseudo-terminal (`columns` wide if given); return what
    reached the terminal."""
    main, secondary = pty.openpty()
    if columns:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "mailtix", *args], stdout=secondary,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode(errors="replace")


def test_ticket_show_uses_the_pager_on_a_terminal_only(filled, cli, tmp_path):
    number = filled["Printer jams"]
    paged = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ncat > {paged}\necho PAGER-RAN\n")
    pager.chmod(0o755)
    env = {**os.environ, "PAGER": str(pager), "PYTHONPATH": str(Path(__file__).parents[1]),
           "COLUMNS": "100"}
    on_tty = _on_a_tty(["ticket", "show", number], env)
    assert "PAGER-RAN" in on_tty and "Printer jams" in paged.read_text()
    paged.unlink()
    direct = _on_a_tty(["ticket", "show", number, "--no-pager"], env)
    assert "Printer jams" in direct and "PAGER-RAN" not in direct and not paged.exists()
    piped = subprocess.run([sys.executable, "-m", "mailtix", "ticket", "show", number],
                           capture_output=True, text=True, env=env, check=True)
    assert "Printer jams" in piped.stdout and not paged.exists()
    # a list on a terminal is a table by default, not tab-separated, in colour unless NO_COLOR
    colour = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])[;m]")  # SGR foreground colours
    listed = _on_a_tty(["ticket", "list"], env)
    assert "number" in listed and "\t" not in listed and colour.search(listed)
    plain = _on_a_tty(["ticket", "list"], {**env, "NO_COLOR": "1"})
    assert "number" in plain and not colour.search(plain), "bold may stay; colour goes"


def test_wide_characters_are_measured_in_cells(capsys, monkeypatch):
    from mailtix.cli import output

    monkeypatch.setenv("COLUMNS", "60")
    rows = [{"number": "202611220001", "subject": "請求書について質問があります" * 3,
             "at": "2026-11-22T10:00:00+00:00"},
            {"number": "202611220002", "subject": "Grüße 😀 " * 10, "at": None}]
    columns = [output.Column("number", "number"), output.Column("subject", "subject", cut=True),
               output.Column("at", "activity", time=True)]
    output.render(rows, columns, "table")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(cell_len(line) <= 60 for line in lines), lines
    assert "202611220001" in lines[1] and "…" in lines[1] and "…" in lines[2]


def test_errors_quote_text_literally(cli, mailbox_account):
    mailbox_account()
    result = cli("ticket", "show", "[bold]12\x9b\x1b[2J")
    assert result.exit_code != 0
    assert "\x9b" not in result.output and "\x1b" not in result.output
    assert "[bold]12\\x9b\u241b[2J" in result.output


def test_the_real_terminal_width_is_used_without_columns(filled):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    for columns in (60, 120):
        shown = _on_a_tty(["ticket", "list", "--all"], env, columns)
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in shown.splitlines()]
        assert len(lines) == 4, lines
        assert max(cell_len(line) for line in lines) <= columns
        assert max(cell_len(line) for line in lines) > columns - 10, "the width is used"
