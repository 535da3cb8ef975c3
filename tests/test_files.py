"""Files mailtix writes on the user's disk (issue 16 items 3–6, issue 15 item 12): never through a
planted symlink, never over an existing file without --force, never outside the chosen folder;
long names cut to 255 bytes; mail 0600, folders 0700; Maildir export keeps folders and flags."""

from __future__ import annotations

import json
import mailbox
import os
import stat

import pytest
from helpers import only_ticket
from servers import simple_message


@pytest.fixture(autouse=True)
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _with_files(*names: str, raw_names: tuple[str, ...] = ()) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.org", "s@example.com", "with files"
    msg["Message-ID"] = "<files@x.org>"
    msg.set_content("see attached")
    for i, name in enumerate(names):
        msg.add_attachment(f"%PDF {i}".encode(), maintype="application", subtype="pdf",
                           filename=name)
    data = msg.as_bytes()
    for i, quoted in enumerate(raw_names):
        # an RFC 2231 name exactly as a hostile sender writes it
        part = (b"--XYZ\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Disposition: attachment; filename*=UTF-8''" + quoted.encode()
                + b"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEs=\r\n")
        if i == 0:
            data = (b"From: a@x.org\r\nTo: s@example.com\r\nSubject: long\r\n"
                    b"Message-ID: <long@x.org>\r\nMIME-Version: 1.0\r\n"
                    b"Content-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
                    b"--XYZ\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
        data += part
    if raw_names:
        data += b"--XYZ--\r\n"
    return data


@pytest.fixture
def ticket(dovecot, mailbox_account, cli):
    def make(raw: bytes) -> str:
        user, _ = mailbox_account()
        dovecot.deliver(user, raw)
        assert cli("run").exit_code == 0
        return only_ticket(cli)

    return make


def test_attachments_never_follow_a_planted_symlink(ticket, cli, tmp_path):
    number = ticket(_with_files("a.pdf", "b.pdf"))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "att"
    out.mkdir()
    (out / "a.pdf").symlink_to(victim)
    refused = cli("ticket", "attachments", number, "--save", str(out))
    assert refused.exit_code == 2, refused.stdout
    assert "exists already" in refused.stderr and "--force" in refused.stderr
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["a.pdf"], "nothing written on refusal"
    forced = cli("ticket", "attachments", number, "--save", str(out), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert victim.read_bytes() == b"precious", "--force replaces the link, not its target"
    assert not (out / "a.pdf").is_symlink() and (out / "a.pdf").read_bytes() == b"%PDF 0"
    assert mode(out / "a.pdf") == 0o600 and mode(out / "b.pdf") == 0o600
    # the folder itself planted as a symlink to somewhere else
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    res = cli("ticket", "attachments", number, "--save", str(tmp_path / "link"))
    assert res.exit_code == 2 and "symbolic link" in res.stderr
    assert list(elsewhere.iterdir()) == []


def test_attachments_new_folder_is_private_and_second_save_refuses(ticket, cli, tmp_path):
    number = ticket(_with_files("a.pdf", "a.pdf", "../a.pdf"))
    out = tmp_path / "att"
    first = cli("ticket", "attachments", number, "--save", str(out))
    assert first.exit_code == 0, first.stderr
    assert mode(out) == 0o700
    assert sorted(p.name for p in out.iterdir()) == ["_a.pdf", "a-1.pdf", "a.pdf"]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = cli("ticket", "attachments", number, "--save", str(out))
    assert again.exit_code == 2 and "exists already" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    missing = cli("ticket", "attachments", number, "--save", str(tmp_path / "no" / "such"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_long_utf8_attachment_names_are_cut_to_255_bytes(ticket, cli, tmp_path):
    euro = "%E2%82%AC" * 120
    number = ticket(_with_files(raw_names=(euro, euro + ".pdf", euro + ".pdf")))
    out = tmp_path / "att"
    res = cli("ticket", "attachments", number, "--save", str(out))
    assert res.exit_code == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and len(set(names)) == 3
    assert all(len(n.encode()) <= 255 for n in names), [len(n.encode()) for n in names]
    assert sum(n.endswith(".pdf") for n in names) == 2
    assert all(n.startswith("€€€") for n in names)


def test_ticket_export_mbox_and_eml_are_private_and_never_overwrite(ticket, cli, tmp_path):
    number = ticket(_with_files("a.pdf"))
    victim = tmp_path / "victim.mbox"
    victim.write_bytes(b"From x\n\nold mail\n")
    target = tmp_path / "t.mbox"
    target.symlink_to(victim)
    res = cli("ticket", "export", number, "--mbox", str(target))
    assert res.exit_code == 2 and "exists already" in res.stderr
    assert victim.read_bytes() == b"From x\n\nold mail\n", "never appended to the victim"
    plain = tmp_path / "plain.mbox"
    assert cli("ticket", "export", number, "--mbox", str(plain)).exit_code == 0
    assert mode(plain) == 0o600
    assert [m["Message-ID"] for m in mailbox.mbox(str(plain))] == ["<files@x.org>"]
    assert cli("ticket", "export", number, "--mbox", str(plain)).exit_code == 2
    assert cli("ticket", "export", number, "--mbox", str(plain), "--force").exit_code == 0
    assert len(mailbox.mbox(str(plain))) == 1, "--force replaces, never appends"
    eml = tmp_path / "eml"
    assert cli("ticket", "export", number, "--eml", str(eml)).exit_code == 0
    assert mode(eml) == 0o700
    files = list(eml.glob("*.eml"))
    assert len(files) == 1 and mode(files[0]) == 0o600
    again = cli("ticket", "export", number, "--eml", str(eml))
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_mbox_quotes_from_lines_reversibly(ticket, cli, tmp_path):
    raw = simple_message(subject="from lines", body="Hi\nFrom here on\n>From quoted\n")
    number = ticket(raw)
    out = tmp_path / "t.mbox"
    assert cli("ticket", "export", number, "--mbox", str(out)).exit_code == 0
    data = out.read_bytes()
    assert b"\n>From here on\r\n" in data and b"\n>>From quoted\r\n" in data


@pytest.fixture
def archived(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='[accounts.support.tickets]\nenabled = false\n'
                                    '[accounts.support.archive]\nenabled = true\n')
    client = dovecot.imap_client(user)
    client.create("Projects/2026")
    client.logout()
    dovecot.deliver(user, simple_message(subject="unread"))
    dovecot.deliver(user, simple_message(subject="read"))
    dovecot.deliver(user, simple_message(subject="nested"), folder="Projects/2026")
    client = dovecot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS", r"(\Seen \Flagged)")
    client.logout()
    assert cli("archive", "run").exit_code == 0
    return user


def test_archive_export_maildir_keeps_folders_flags_and_is_private(archived, cli, tmp_path):
    md = tmp_path / "audit"
    res = cli("archive", "export", "--maildir", str(md))
    assert res.exit_code == 0, res.stderr
    box = mailbox.Maildir(str(md), create=False)
    by_subject = {m["subject"]: m for m in box}
    assert set(by_subject) == {"unread", "read"}
    assert by_subject["read"].get_flags() == "FS" and by_subject["read"].get_subdir() == "cur"
    assert by_subject["unread"].get_flags() == ""
    assert box.list_folders() == ["Projects.2026"]
    assert [m["subject"] for m in box.get_folder("Projects.2026")] == ["nested"]
    assert not list((md / "new").iterdir()), "flags kept in cur/, not everything in new/"
    for root, _dirs, files in os.walk(md):
        assert mode(root) == 0o700, root
        for f in files:
            assert mode(os.path.join(root, f)) == 0o600, f
    again = cli("archive", "export", "--maildir", str(md))
    assert again.exit_code == 2 and "not empty" in again.stderr


def test_archive_export_mbox_is_private_and_refuses_symlinks(archived, cli, tmp_path):
    out = tmp_path / "audit.mbox"
    assert cli("archive", "export", "--mbox", str(out)).exit_code == 0
    assert mode(out) == 0o600 and len(mailbox.mbox(str(out))) == 3
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "planted.mbox").symlink_to(victim)
    res = cli("archive", "export", "--mbox", str(tmp_path / "planted.mbox"))
    assert res.exit_code == 2 and victim.read_bytes() == b"precious"
    (tmp_path / "mdlink").symlink_to(tmp_path / "elsewhere")
    res = cli("archive", "export", "--maildir", str(tmp_path / "mdlink"))
    assert res.exit_code == 2 and not (tmp_path / "elsewhere").exists()


def test_archive_export_into_a_missing_parent_is_a_clear_error(archived, cli):
    res = cli("archive", "export", "--maildir", "/no/such/parent/box")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[0] == "error: the folder /no/such/parent does not exist"
    assert "Traceback" not in res.stderr
    res = cli("archive", "export", "--mbox", "/no/such/parent/a.mbox")
    assert res.exit_code == 2 and "does not exist" in res.stderr




def _corrupt(subject: str) -> str:
    from helpers import db

    with db() as conn:
        sha = conn.execute("SELECT sha256 FROM archive_messages WHERE subject = ?",
                           (subject,)).fetchone()[0]
        conn.execute("UPDATE raw_messages SET data = X'00' WHERE sha256 = ?", (sha,))
    return sha


def test_archive_run_refetches_a_damaged_copy_from_the_server(archived, dovecot, cli):
    from helpers import server_bodies

    sha = _corrupt("read")
    assert cli("archive", "verify").exit_code == 6
    res = cli("archive", "run", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["verify"]["repaired"] == [sha]
    assert cli("archive", "verify").exit_code == 0
    from helpers import db

    with db() as conn:
        data = conn.execute("SELECT data FROM raw_messages WHERE sha256 = ?", (sha,)).fetchone()[0]
    assert bytes(data) in server_bodies(dovecot, archived).values()


def test_archive_run_fails_when_a_damaged_copy_is_gone_from_the_server(archived, dovecot, cli):
    sha = _corrupt("read")
    client = dovecot.imap_client(archived)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
    client.expunge()
    client.logout()
    res = cli("archive", "run")
    assert res.exit_code == 6
    assert f"archive copy {sha} is damaged" in res.stderr
    res = cli("archive", "run", "--json")
    assert res.exit_code == 6 and json.loads(res.stdout)["verify"]["damaged"] == [sha]


def test_maildir_folder_names_from_the_server_stay_one_component():
    from mailtix.archive import maildir_folder, maildir_info

    assert maildir_folder("INBOX", None) == ""
    assert maildir_folder("Projects/2026", None) == ".Projects.2026"
    assert maildir_folder("../..", None) == "._"
    assert maildir_folder("a\x00b/\x1bc", None) == ".a_b._c"
    assert maildir_folder("INBOX", "sup.port") == ".sup_port.INBOX"
    assert len(maildir_folder("€" * 300, None).encode()) <= 255
    assert maildir_info("\\Seen \\Answered \\Recent $Forwarded") == ":2,RS"


def test_unique_names_fit_255_bytes_whatever_the_name():
    from mailtix.fsutil import unique_names

    names = unique_names(["a." + "x" * 300] * 3 + ["€" * 200 + ".pdf"] * 2 + ["A.pdf", "a.pdf"])
    assert all(0 < len(n.encode()) <= 255 for n in names)
    assert len({n.casefold() for n in names}) == len(names)
    assert names[3].endswith(".pdf") and names[4].endswith("-1.pdf")
    assert names[5:] == ["A.pdf", "a-1.pdf"]


def test_export_to_a_relative_path(ticket, cli, tmp_path, monkeypatch):
    number = ticket(_with_files("a.pdf"))
    monkeypatch.chdir(tmp_path)
    assert cli("ticket", "export", number, "--mbox", "t.mbox").exit_code == 0
    assert (tmp_path / "t.mbox").exists()
    assert cli("ticket", "attachments", number, "--save", ".").exit_code == 0
    assert (tmp_path / "a.pdf").read_bytes() == b"%PDF 0"
