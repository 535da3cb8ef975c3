"""Agent actions on a ticket's mail (issue 22): replying in $EDITOR, forward, read/unread,
move, trash/restore, link, contact edit — against Dovecot (checked with a raw imaplib client)
and aiosmtpd (the bytes that arrive)."""

from __future__ import annotations

import email
import json
import sys
from email import policy

import pytest
from helpers import count, db, only_ticket, server_flags, server_uids
from servers import simple_message

from mailtix.errors import ExitCode

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends


@pytest.fixture
def helpdesk(dovecot, mailbox_account, smtp, cfgdir):
    """Account `support` fetching from Dovecot, sending through aiosmtpd; agents ann, bob."""

    def make(extra: str = "", general: str = "", tail: str = "") -> str:
        user, _ = mailbox_account(
            extra='name = "Example Support"\n' + extra
                  + f'\n[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                  'tls = "none"\n', general=general)
        cfg = cfgdir / "config.toml"
        cfg.write_text(cfg.read_text() + '\n[agents.ann]\nname = "Ann Agent"\n'
                       'email = "ann@example.com"\n[agents.bob]\nemail = "bob@example.com"\n'
                       + tail)
        return user

    return make


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def editor(tmp_path, monkeypatch, code: str) -> None:
    """A fake $EDITOR: a Python script that rewrites the draft file given as its argument."""
    script = tmp_path / "fake_editor.py"
    script.write_text("import pathlib, sys\npath = pathlib.Path(sys.argv[1])\n"
                      "text = path.read_text()\n" + code)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)


def one_ticket(helpdesk, dovecot, cli, **kw) -> tuple[str, str]:
    user = helpdesk()
    kw.setdefault("subject", "Broken printer")
    kw.setdefault("sender", "Jane <jane@customer.example>")
    kw.setdefault("body", "The printer jams.\nOn page two.\n")
    dovecot.deliver(user, simple_message(message_id="<in1@x.org>", **kw))
    assert cli("run").exit_code == 0
    return user, only_ticket(cli)


def test_reply_in_editor_reads_back_to_cc_subject(helpdesk, dovecot, smtp, cli, tmp_path,
                                                   monkeypatch):
    _user, number = one_ticket(helpdesk, dovecot, cli)
    editor(tmp_path, monkeypatch,
           "seen = pathlib.Path(sys.argv[1] + '.seen'); seen.write_text(text)\n"
           "head, _, body = text.partition('\\n\\n')\n"
           "head = head.replace('Cc: ', 'Cc: boss@customer.example').replace("
           "'Subject: Re: Broken printer', 'Subject: Re: Printer fixed')\n"
           "path.write_text(head + '\\n\\nA technician comes tomorrow.\\n' + body)\n")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = cli("ticket", "reply", number[-3:], "--edit", "--json")
    assert result.exit_code == 0, result.stderr
    # The draft showed the headers and the quoted mail.
    shown = next(tmp_path.glob("mailtix-*.seen")).read_text()
    assert shown.startswith("To: jane@customer.example\nCc: \nSubject: Re: Broken printer")
    assert "> The printer jams.\n> On page two." in shown and "Jane wrote:" in shown
    got = smtp.messages[-1]
    assert sorted(got["to"]) == ["boss@customer.example", "jane@customer.example"]
    msg = parsed(got["raw"])
    assert msg["Subject"] == f"Re: Printer fixed [Ticket#{number}]"
    assert msg["Cc"] == "boss@customer.example" and msg["In-Reply-To"] == "<in1@x.org>"
    text = msg.get_body(("plain",)).get_content()
    assert text.startswith("A technician comes tomorrow.") and "> On page two." in text
    assert "To: " not in text
    assert not list(tmp_path.glob("mailtix-*.eml")), "the draft file is removed"
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert detail["status"] == "waiting-customer", "status_after_reply's default"


@pytest.mark.parametrize("code", ["path.write_text('')", "pass",
                                  "path.write_text(text.split('\\n\\n')[0] + '\\n\\n')"],
                         ids=["empty", "unchanged", "headers-only"])
def test_editor_abort_sends_nothing(helpdesk, dovecot, smtp, cli, tmp_path, monkeypatch, code):
    _user, number = one_ticket(helpdesk, dovecot, cli)
    editor(tmp_path, monkeypatch, code)
    result = cli("ticket", "reply", number, "--edit")
    assert result.exit_code == ExitCode.FAILURE and "nothing sent" in result.stderr
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["status"] == "new"


def test_editor_unknown_header_keeps_the_draft(helpdesk, dovecot, smtp, cli, tmp_path,
                                               monkeypatch):
    _user, number = one_ticket(helpdesk, dovecot, cli)
    editor(tmp_path, monkeypatch, "path.write_text('Bcc: x@y.example\\n' + text + 'hi\\n')")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = cli("ticket", "reply", number, "--edit")
    assert result.exit_code == ExitCode.USAGE and "Bcc" in result.stderr
    kept = list(tmp_path.glob("mailtix-*.eml"))
    assert len(kept) == 1 and str(kept[0]) in result.stderr and smtp.messages == []


def test_ticket_numbers_short_and_pasted(helpdesk, dovecot, cli, cfgdir):
    user = helpdesk()
    for i in range(11):
        dovecot.deliver(user, simple_message(subject=f"t{i}"))
    cli("run")
    numbers = sorted(r["number"] for r in json.loads(cli("ticket", "list", "--json").stdout))
    assert numbers[0].endswith("0001") and numbers[10].endswith("0011")
    shown = json.loads(cli("ticket", "show", f"[Ticket#{numbers[0]}]", "--json").stdout)
    assert shown["number"] == numbers[0]
    pasted = json.loads(cli("ticket", "show", f"Re: t0 [Ticket#{numbers[1]}]", "--json").stdout)
    assert pasted["number"] == numbers[1]
    assert json.loads(cli("ticket", "show", "2", "--json").stdout)["number"] == numbers[1]
    ambiguous = cli("ticket", "show", "1")
    assert ambiguous.exit_code == ExitCode.USAGE and "give more digits" in ambiguous.stderr
    assert cli("ticket", "note", "999999", "x").exit_code != 0


def test_reply_status_after_reply_configurable(helpdesk, dovecot, cli, tmp_path):
    user = helpdesk(general='status_after_reply = ""')
    dovecot.deliver(user, simple_message())
    cli("run")
    number = only_ticket(cli)
    assert cli("ticket", "reply", number, input="ok\n").exit_code == 0
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["status"] == "new"
    assert cli("ticket", "reply", number, "--status", "closed", input="ok\n").exit_code == 0
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["status"] == "closed"


def test_reply_to_mailer_daemon_needs_force(helpdesk, dovecot, smtp, cli, tmp_path,
                                            monkeypatch):
    _user, number = one_ticket(helpdesk, dovecot, cli, sender="noreply@shop.example")
    refused = cli("ticket", "reply", number, input="thanks\n")
    assert refused.exit_code == ExitCode.USAGE and "--force" in refused.stderr
    editor(tmp_path, monkeypatch, "path.write_text(text + 'x')")
    assert cli("ticket", "reply", number, "--edit").exit_code == ExitCode.USAGE
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0
    assert cli("ticket", "reply", number, "--force", input="thanks\n").exit_code == 0
    assert smtp.messages[-1]["to"] == ["noreply@shop.example"]


def test_forward_attached_and_inline(helpdesk, dovecot, smtp, cli):
    _user, number = one_ticket(helpdesk, dovecot, cli)
    stored = json.loads(cli("ticket", "show", number, "--json").stdout)["messages"][0]["id"]
    original = cli("ticket", "show", number, "--raw", str(stored)).stdout_bytes
    result = cli("ticket", "forward", number, "--to", "tech@partner.example", "--note",
                 "Please have a look.", "--json")
    assert result.exit_code == 0, result.stderr
    got = smtp.messages[-1]
    assert got["to"] == ["tech@partner.example"]
    msg = parsed(got["raw"])
    assert msg["Subject"] == f"Fwd: Broken printer [Ticket#{number}]"
    assert msg.get_body(("plain",)).get_content().startswith("Please have a look.")
    attached = [p for p in msg.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    inner = attached[0].get_content()
    assert inner["Message-ID"] == "<in1@x.org>"
    assert attached[0].get_payload()[0].as_bytes().replace(b"\r\n", b"\n").strip() \
        .endswith(original.replace(b"\r\n", b"\n").strip().splitlines()[-1])
    inline = cli("ticket", "forward", number, "--to", "tech@partner.example", "--inline")
    assert inline.exit_code == 0, inline.stderr
    msg = parsed(smtp.messages[-1]["raw"])
    text = msg.get_body(("plain",)).get_content()
    assert "---------- Forwarded message ----------" in text
    assert "From: Jane <jane@customer.example>" in text and "The printer jams." in text
    assert not list(msg.iter_attachments())
    history = json.loads(cli("ticket", "show", number, "--json").stdout)["history"]
    assert [h["kind"] for h in history].count("forward") == 2
    assert cli("ticket", "forward", number, "--to", "not-an-address").exit_code == ExitCode.USAGE


def test_unread_and_read_set_seen_on_the_server(helpdesk, dovecot, cli):
    user, number = one_ticket(helpdesk, dovecot, cli)
    assert "\\Seen" in list(server_flags(dovecot, user).values())[0], "post_fetch = seen"
    result = cli("ticket", "unread", number, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["server_copies"] == 1
    assert "\\Seen" not in list(server_flags(dovecot, user).values())[0]
    rows = json.loads(cli("ticket", "list", "--json").stdout)
    assert rows[0]["unread"] == 1
    assert cli("ticket", "read", number).exit_code == 0
    assert "\\Seen" in list(server_flags(dovecot, user).values())[0]
    assert json.loads(cli("ticket", "list", "--json").stdout)[0]["unread"] == 0


def test_move_trash_restore_on_the_server(helpdesk, dovecot, cli):
    user, number = one_ticket(helpdesk, dovecot, cli)
    client = dovecot.imap_client(user)
    assert client.create("Archive/2026")[0] == "OK"
    client.logout()
    unknown = cli("ticket", "move", number, "--folder", "Archiv")
    assert unknown.exit_code == ExitCode.USAGE and "Archive/2026" in unknown.stderr
    assert len(server_uids(dovecot, user)) == 1, "nothing moved on a typo"
    moved = cli("ticket", "move", number, "--folder", "Archive/2026", "--json")
    assert moved.exit_code == 0, moved.stderr
    assert json.loads(moved.stdout)["moved"] == 1
    assert server_uids(dovecot, user) == [] and len(server_uids(dovecot, user, "Archive/2026")) == 1
    # Trash: the copy goes to Trash (made, as the server marks none \Trash), the ticket hides.
    trashed = cli("ticket", "trash", number[-4:], "--json")
    assert trashed.exit_code == 0, trashed.stderr
    assert server_uids(dovecot, user, "Archive/2026") == []
    assert len(server_uids(dovecot, user, "Trash")) == 1
    assert json.loads(cli("ticket", "list", "--json").stdout) == []
    listed = json.loads(cli("ticket", "list", "--status", "deleted", "--json").stdout)
    assert [r["number"] for r in listed] == [number]
    assert cli("ticket", "trash", number).exit_code == ExitCode.USAGE
    # Restore: back to the folder it came from, the status it had.
    restored = cli("ticket", "restore", number, "--json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["status"] == "new"
    assert server_uids(dovecot, user, "Trash") == []
    assert len(server_uids(dovecot, user, "Archive/2026")) == 1
    assert [r["number"] for r in json.loads(cli("ticket", "list", "--json").stdout)] == [number]
    # Once more into the trash, now longer ago than the window: no restore.
    assert cli("ticket", "trash", number).exit_code == 0
    with db() as conn:
        conn.execute("UPDATE tickets SET deleted_at = '2020-01-01T00:00:00+00:00'")
    late = cli("ticket", "restore", number)
    assert late.exit_code == ExitCode.USAGE and "restore_window" in late.stderr
    assert len(server_uids(dovecot, user, "Trash")) == 1


def test_a_later_fetch_of_the_target_folder_stores_nothing_twice(helpdesk, dovecot, cli,
                                                                  cfgdir):
    user, number = one_ticket(helpdesk, dovecot, cli)
    client = dovecot.imap_client(user)
    client.create("Done")
    client.logout()
    assert cli("ticket", "move", number, "--folder", "Done").exit_code == 0
    cfg = cfgdir / "config.toml"
    cfg.write_text(cfg.read_text().replace('user = "', 'folders = ["INBOX", "Done"]\nuser = "'))
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert count("SELECT COUNT(*) FROM message_sources") == 1


def test_link_and_contact_edit(helpdesk, dovecot, cli):
    _user, number = one_ticket(helpdesk, dovecot, cli)
    sent = cli("send", "--to", "jane@customer.example", "--subject", "Invoice", "--doc-ref",
               "INV-7", "--body-file", "-", "--queue", input="Your invoice.\n")
    assert sent.exit_code == 0, sent.stderr
    linked = cli("ticket", "link", number, "--doc-ref", "INV-7", "--json")
    assert linked.exit_code == 0, linked.stderr
    assert json.loads(linked.stdout)["mails"] == 1
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["doc_ref"] == "INV-7"
    edited = cli("contact", "edit", "Jane <JANE@customer.example>", "--name", "Jane Doe",
                 "--company", "Customer GmbH", "--json")
    assert edited.exit_code == 0, edited.stderr
    rows = json.loads(cli("contact", "list", "jane", "--json").stdout)
    assert rows[0]["name"] == "Jane Doe" and rows[0]["company"] == "Customer GmbH"
    assert cli("contact", "edit", "nobody@x.example", "--name", "X").exit_code == ExitCode.USAGE
    assert cli("contact", "edit", "jane@customer.example").exit_code == ExitCode.USAGE


PLAIN_CAPS = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE"


@pytest.fixture(scope="module")
def dovecot_dot(tls):
    """A Dovecot with '.' between folder levels that announces neither MOVE nor UIDPLUS (as
    older servers): folder names and the COPY fallback are then mailtix's own work."""
    import tempfile
    from pathlib import Path

    import servers

    server = servers.Dovecot(Path(tempfile.mkdtemp(prefix="mailtix-dovecot-dot-")), tls,
                             separator=".", capabilities=PLAIN_CAPS).start()
    yield server
    server.stop()


def test_move_and_trash_with_dot_separator_and_no_move_command(dovecot_dot, cfgdir, cli,
                                                               monkeypatch):
    from conftest import write_config

    from mailtix.secrets import env_name

    user, password = dovecot_dot.new_user()
    write_config(cfgdir, f'[accounts.support]\nemail = "{user}@example.com"\n'
                         '[accounts.support.fetch]\nhost = "127.0.0.1"\n'
                         f'port = {dovecot_dot.imap}\ntls = "none"\nuser = "{user}"\n')
    monkeypatch.setenv(env_name("support", "fetch"), password)
    client = dovecot_dot.imap_client(user)
    assert client.create("Archive.2026")[0] == "OK"
    client.logout()
    dovecot_dot.deliver(user, simple_message(subject="old order", message_id="<o1@x.org>"))
    dovecot_dot.deliver(user, simple_message(subject="other mail", message_id="<o2@x.org>"))
    assert cli("run").exit_code == 0
    rows = json.loads(cli("ticket", "list", "--json").stdout)
    number = next(r["number"] for r in rows if r["subject"] == "old order")
    # Another client marked the other mail \Deleted: a plain EXPUNGE would take it too.
    client = dovecot_dot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
    client.logout()
    result = cli("ticket", "move", number, "--folder", "Archive/2026", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["folders"] == ["support:Archive.2026"]
    assert len(server_uids(dovecot_dot, user, "Archive.2026")) == 1
    flags = server_flags(dovecot_dot, user)
    assert sorted(flags) == [1, 2] and all("\\Deleted" in f for f in flags.values()), \
        "copied and marked, not expunged while a foreign \\Deleted mail is there"
    # The store knows the new place (found by Message-ID: no COPYUID without UIDPLUS).
    with db() as conn:
        src = conn.execute("SELECT folder, uid FROM message_sources s JOIN messages m ON "
                           "m.id = s.message_id WHERE m.message_id = '<o1@x.org>'").fetchone()
    assert tuple(src) == ("Archive.2026", 1)
    client = dovecot_dot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "2", "-FLAGS", r"(\Deleted)")
    client.logout()
    assert cli("ticket", "trash", number).exit_code == 0
    assert server_uids(dovecot_dot, user, "Archive.2026") == [], "nothing foreign: expunged"
    assert len(server_uids(dovecot_dot, user, "Trash")) == 1
    assert cli("ticket", "restore", number).exit_code == 0
    assert len(server_uids(dovecot_dot, user, "Archive.2026")) == 1


def test_a_customer_reply_brings_a_trashed_ticket_back(helpdesk, dovecot, cli):
    user, number = one_ticket(helpdesk, dovecot, cli)
    assert cli("ticket", "trash", number).exit_code == 0
    dovecot.deliver(user, simple_message(subject=f"Re: Broken printer [Ticket#{number}]",
                                         In_Reply_To="<in1@x.org>"))
    assert cli("run").exit_code == 0
    rows = json.loads(cli("ticket", "list", "--json").stdout)
    assert [(r["number"], r["status"]) for r in rows] == [(number, "open")]


def test_copies_moved_on_by_post_fetch_move_are_found(helpdesk, dovecot, cli):
    user = helpdesk('post_fetch = "move"\nmove_to = "Done"')
    dovecot.deliver(user, simple_message(subject="handled", message_id="<m1@x.org>"))
    assert cli("run").exit_code == 0
    number = only_ticket(cli)
    assert server_uids(dovecot, user) == [] and len(server_uids(dovecot, user, "Done")) == 1
    result = cli("ticket", "unread", number, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["server_copies"] == 1
    assert "\\Seen" not in list(server_flags(dovecot, user, "Done").values())[0]
    assert cli("ticket", "trash", number).exit_code == 0
    assert server_uids(dovecot, user, "Done") == []
    assert len(server_uids(dovecot, user, "Trash")) == 1
    assert cli("ticket", "restore", number).exit_code == 0
    assert len(server_uids(dovecot, user, "Done")) == 1, "back where the fetch had put it"


def test_action_messages_in_german(helpdesk, dovecot, cli, monkeypatch):
    from mailtix import locale as mlocale

    _user, number = one_ticket(helpdesk, dovecot, cli, subject="Drucker")
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    try:
        out = cli("ticket", "unread", number).stdout
    finally:
        mlocale.configure()
    assert out == f"{number}: ungelesen; 1 Server-Kopien als ungelesen markiert\n"
