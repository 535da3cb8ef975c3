"""Loose ends left by the other helpers: one address parser for compose and manifests, the
autoresponder on a cut-off header block, sendmail's environment, and more."""

from __future__ import annotations

import pytest

# --- one address parser (compose, manifest) ---------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ('"Müller, Jürgen" <j@x.example>', ["j@x.example"]),
    ("Müller, Jürgen <j@x.example>", ["j@x.example"]),
    ("=?utf-8?q?victim=40example.org?= <real@sender.example>", ["real@sender.example"]),
    ("a@x.example; b@y.example", ["a@x.example", "b@y.example"]),
])
def test_compose_reads_address_lists_like_the_parser(value, expected):
    from mailtix.mail.compose import addresses, bare

    assert [bare(a) for a in addresses([value])] == expected


def test_manifest_keeps_an_unquoted_last_first_name_as_one_recipient():
    from mailtix.manifest import split_addresses

    assert split_addresses("Müller, Jürgen <j@x.example>, b@y.example") == [
        "Müller, Jürgen <j@x.example>", "b@y.example"]


# --- the autoresponder on a header block the parser could not read whole ----------------------

AUTO = "[accounts.support.autoresponder]\nenabled = true\n"
FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"


def _overlong_head(tail: str) -> bytes:
    """120 KB of fields before `tail`: past the parser's header cap, so `tail` is dropped."""
    filler = "".join(f"X-Filler-{i}: {'x' * 900}\r\n" for i in range(130))
    return (f"From: robot@vendor.example\r\nTo: support@example.com\r\nSubject: status\r\n"
            f"Date: {FUTURE}\r\nMessage-ID: <long-head@vendor.example>\r\n{filler}{tail}"
            "\r\nAll systems go.\r\n").encode()


def test_no_autoresponse_when_the_header_block_was_cut_off(
        mailbox_account, dovecot, smtp, cli, tmp_path):
    import json

    user, _ = mailbox_account(extra=AUTO + f'[accounts.support.smtp]\nhost = "127.0.0.1"\n'
                                           f'port = {smtp.port}\ntls = "none"\n')
    raw = _overlong_head("Auto-Submitted: auto-generated\r\nList-Id: <status.vendor.example>\r\n")
    eml = tmp_path / "long.eml"
    eml.write_bytes(raw)
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert explained["autoresponse"].startswith("no: ") and "header" in explained["autoresponse"]
    dovecot.deliver(user, raw)
    assert cli("run").exit_code == 0
    assert smtp.messages == [], "a robot whose Auto-Submitted was cut off is not answered"


# --- the sendmail child gets no passwords ------------------------------------------------------

def test_sendmail_child_does_not_inherit_passwords(dovecot, mailbox_account, cli, tmp_path,
                                                   monkeypatch):
    from helpers import only_ticket
    from servers import simple_message

    spool = tmp_path / "spool"
    spool.mkdir()
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\nenv > {spool}/env\ncat > {spool}/message\n')
    fake.chmod(0o755)
    user, password = mailbox_account(extra=f'[accounts.support.smtp]\nprotocol = "sendmail"\n'
                                           f'sendmail_path = "{fake}"\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_SUPPORT_SMTP", "smtp-secret-value")
    dovecot.deliver(user, simple_message(subject="via sendmail", sender="jane@cust.example"))
    cli("run")
    assert cli("ticket", "reply", only_ticket(cli), input="hello\n").exit_code == 0
    env = (spool / "env").read_text()
    assert "PATH=" in env
    assert "MAILTIX_PASSWORD" not in env
    assert password not in env and "smtp-secret-value" not in env


# --- send-batch shows recipients refused at RCPT -----------------------------------------------

def test_send_batch_shows_a_refused_cc_per_row(cfgdir, smtp, cli, tmp_path):
    import json

    from helpers import billing_sender

    from mailtix.errors import ExitCode

    billing_sender(cfgdir, smtp.port, "subject: Invoice\n---\nHello.\n")
    manifest = tmp_path / "rows.csv"
    manifest.write_text("to,cc,doc_ref\na@example.org,old@example.org,INV-1\n"
                        "b@example.org,,INV-2\n")
    smtp.handler.refuse = {"old@example.org": "550 5.1.1 user unknown"}
    result = cli("send-batch", str(manifest), "--template", "invoice", "--json")
    assert result.exit_code == ExitCode.PARTIAL, result.stdout
    data = json.loads(result.stdout)
    assert data["sent"] == ["INV-1", "INV-2"]
    assert data["refused"] == {"INV-1": [{"rcpt": "old@example.org", "state": "refused",
                                          "reply": "550 5.1.1 user unknown"}]}
    smtp.handler.refuse = {}
    manifest.write_text(manifest.read_text() + "c@example.org,d@example.org,INV-3\n")
    smtp.handler.refuse = {"d@example.org": "550 5.1.1 gone"}
    text = cli("send-batch", str(manifest), "--template", "invoice").stdout
    assert "INV-3: refused: d@example.org: 550 5.1.1 gone" in text


# --- archive run: a connection lost in the middle of mirroring ---------------------------------

class CuttingProxy:
    """TCP between client and Dovecot that drops the connection once the server has sent
    `limit` bytes: the real server, a real connection lost in the middle of a FETCH."""

    def __init__(self, port: int, limit: int) -> None:
        import socket
        import threading

        self.upstream, self.limit = port, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.limit),
                             daemon=True).start()

    @staticmethod
    def _pump(src, dst, limit) -> None:
        import socket

        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[:limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_archive_run_maps_a_connection_lost_mid_fetch_to_one_line(
        dovecot, mailbox_account, cli, cfgdir):
    import json

    from servers import simple_message

    from mailtix.errors import ExitCode

    user, _ = mailbox_account(extra='[accounts.support.tickets]\nenabled = false\n'
                                    '[accounts.support.archive]\nenabled = true\n')
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"big {i}", body="x" * 100_000 + "\n"))
    proxy = CuttingProxy(dovecot.imap, 150_000)
    try:
        cfg = cfgdir / "config.toml"
        cfg.write_text(cfg.read_text().replace(f"port = {dovecot.imap}", f"port = {proxy.port}"))
        result = cli("archive", "run")
    finally:
        proxy.close()
    assert result.exit_code == ExitCode.NETWORK, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "support" in lines[0], result.stderr
    status = json.loads(cli("status", "--json").stdout)
    account = next(a for a in status["accounts"] if a["account"] == "support")
    assert account["last_error"], account


# --- redaction of very short passwords ---------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ('{"exit_code": 0, "password": "x"}', '{"exit_code": 0, "password": "********"}'),
    ("login x failed for user x", "login ******** failed for user ********"),
    ("next: xyz", "next: xyz"),
    ("pw=x;", "pw=********;"),
])
def test_a_short_secret_is_masked_as_a_whole_token_only(text, expected):
    from mailtix.secrets import redact

    assert redact(text, ["x"]) == expected


def test_a_longer_secret_is_masked_anywhere():
    from mailtix.secrets import redact

    assert redact("user=bobhunter2x and hunter2", ["hunter2"]) == "user=bob********x and ********"


def test_json_stays_readable_with_a_one_letter_password(dovecot, mailbox_account, cli,
                                                        monkeypatch):
    import json

    from mailtix.secrets import env_name

    user, _ = mailbox_account()
    dovecot.add_user(user, "e")
    monkeypatch.setenv(env_name("support", "fetch"), "e")
    result = cli("run", "--json")
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert "accounts" in data and data["accounts"][0]["account"] == "support"


# --- fetch.folders in the server's hierarchy notation ------------------------------------------

@pytest.fixture(scope="module")
def dovecot_dots(tls):
    """Dovecot with '.' between folder levels, as some servers are set up."""
    import tempfile
    from pathlib import Path

    import servers

    server = servers.Dovecot(Path(tempfile.mkdtemp(prefix="mailtix-dovecot-dots-")), tls,
                             separator=".").start()
    yield server
    server.stop()


def _project_account(server, cfgdir, monkeypatch) -> str:
    from conftest import write_config

    user, password = server.new_user()
    write_config(cfgdir, f'[accounts.support]\nemail = "{user}@example.com"\n'
                         f'[accounts.support.fetch]\nprotocol = "imap"\nhost = "127.0.0.1"\n'
                         f'port = {server.imap}\ntls = "none"\nuser = "{user}"\n'
                         'folders = ["INBOX", "Projects/2026"]\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_SUPPORT", password)
    return user


def test_fetch_folders_use_the_servers_hierarchy_separator(dovecot_dots, cfgdir, cli,
                                                           monkeypatch):
    from helpers import count
    from servers import simple_message

    server = dovecot_dots
    user = _project_account(server, cfgdir, monkeypatch)
    server.deliver(user, simple_message(subject="in the inbox"))
    server.deliver(user, simple_message(subject="in a project"), folder="Projects/2026")
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'in a project'") == 1
    server.deliver(user, simple_message(subject="later"), folder="Projects/2026")
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 3, "incremental, nothing twice"


def test_idle_watches_a_nested_folder_in_the_servers_notation(dovecot_dots, cfgdir,
                                                              monkeypatch):
    import threading
    import time

    from servers import simple_message

    from mailtix import watch
    from mailtix.config import load
    from mailtix.sources.idle import IdleWatcher

    user = _project_account(dovecot_dots, cfgdir, monkeypatch)
    dovecot_dots.deliver(user, simple_message(subject="x"), folder="Projects/2026")
    account = load().accounts["support"]
    stop, woken = threading.Event(), []
    watcher = IdleWatcher("support", "Projects/2026", watch._connector(account),
                          woken.append, stop)
    watcher.start()
    try:
        deadline = time.monotonic() + 30
        while not watcher.connects and not watcher.error and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(10)
    assert watcher.error == "" and watcher.connects == 1 and "support" in woken


# --- ticket list shows the unread marker -------------------------------------------------------

def test_ticket_list_shows_unread(dovecot, mailbox_account, cli, monkeypatch):
    from helpers import only_ticket
    from servers import simple_message

    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="look at me"))
    assert cli("run").exit_code == 0
    number = only_ticket(cli)
    assert cli("ticket", "unread", number).exit_code == 0
    table = cli("ticket", "list", "--format", "table").stdout.splitlines()
    assert "unread" in table[0].split()
    row = next(line for line in table if number in line)
    assert "*" in row.split()
    assert cli("ticket", "list", "--format", "csv").stdout.splitlines()[1].split(",")[2] == "1"
    assert cli("ticket", "read", number).exit_code == 0
    row = next(line for line in cli("ticket", "list", "--format", "table").stdout.splitlines()
               if number in line)
    assert "*" not in row.split()
    from mailtix import locale as mlocale

    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    try:
        assert "ungelesen" in cli("ticket", "list", "--format", "table").stdout.splitlines()[0]
    finally:
        monkeypatch.undo()
        mlocale.configure()


def test_the_editor_does_not_inherit_passwords(dovecot, mailbox_account, smtp, cli, tmp_path,
                                               monkeypatch):
    from helpers import only_ticket
    from servers import simple_message

    user, password = mailbox_account(extra=f'[accounts.support.smtp]\nhost = "127.0.0.1"\n'
                                           f'port = {smtp.port}\ntls = "none"\n')
    editor = tmp_path / "editor"
    editor.write_text(f'#!/bin/sh\nenv > {tmp_path}/env\nprintf "\\nOn it.\\n" >> "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    dovecot.deliver(user, simple_message(subject="edit me", sender="jane@cust.example"))
    cli("run")
    result = cli("ticket", "reply", only_ticket(cli), "--edit")
    assert result.exit_code == 0, result.stdout + result.stderr
    env = (tmp_path / "env").read_text()
    assert "PATH=" in env and "MAILTIX_PASSWORD" not in env and password not in env


def test_archive_repair_maps_a_connection_lost_mid_fetch_to_one_line(
        dovecot, mailbox_account, cli, cfgdir):
    import json

    from helpers import db
    from servers import simple_message

    from mailtix.errors import ExitCode

    user, _ = mailbox_account(extra='[accounts.support.tickets]\nenabled = false\n'
                                    '[accounts.support.archive]\nenabled = true\n')
    dovecot.deliver(user, simple_message(subject="big", body="x" * 200_000 + "\n"))
    assert cli("archive", "run").exit_code == 0
    with db() as conn:
        conn.execute("UPDATE raw_messages SET data = X'00'")
    proxy = CuttingProxy(dovecot.imap, 20_000)  # enough for login and STATUS, not the FETCH
    try:
        cfg = cfgdir / "config.toml"
        cfg.write_text(cfg.read_text().replace(f"port = {dovecot.imap}", f"port = {proxy.port}"))
        result = cli("archive", "run", "--json")
    finally:
        proxy.close()
    assert result.exit_code == ExitCode.PARTIAL, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["failed"]["support"]["error"] and len(data["verify"]["damaged"]) == 1
