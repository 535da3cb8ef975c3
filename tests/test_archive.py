"""`mailtix archive` against Dovecot: folders incl. nested and non-ASCII names, incremental
runs, UIDVALIDITY changes, verified deletion, export readable by Python's mailbox module."""

from __future__ import annotations

import json
import mailbox
import time

import pytest
from helpers import count, db, server_uids
from servers import simple_message

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends

OLD = time.time() - 40 * 86400


@pytest.fixture
def archived_user(dovecot, mailbox_account, cli):
    def make(days: int = 0, extra: str = ""):
        user, _ = mailbox_account(extra='[accounts.support.tickets]\nenabled = false\n'
                                        f'[accounts.support.archive]\nenabled = true\n'
                                        f'exclude = ["Trash"]\ndelete_after_days = {days}\n'
                                        + extra)
        client = dovecot.imap_client(user)
        for folder in ("Projects/2026", "Entwürfe", "Trash"):
            from imap_tools.imap_utf7 import utf7_encode

            client.create(utf7_encode(folder))
        client.logout()
        dovecot.deliver(user, simple_message(subject="inbox old"), mtime=OLD)
        dovecot.deliver(user, simple_message(subject="inbox new"))
        dovecot.deliver(user, simple_message(subject="nested"), folder="Projects/2026")
        dovecot.deliver(user, simple_message(subject="Grüße aus dem Entwurf", body="Angebot"),
                        folder="Entwürfe")
        dovecot.deliver(user, simple_message(subject="trash"), folder="Trash")
        return user

    return make


def test_archive_mirrors_selected_folders_incrementally(archived_user, dovecot, cli):
    user = archived_user()
    result = cli("archive", "run", "--json")
    assert result.exit_code == 0, result.stderr
    folders = {f["folder"]: f["archived"] for f in json.loads(result.stdout)["accounts"]["support"]}
    assert folders == {"INBOX": 2, "Projects/2026": 1, "Entwürfe": 1}, folders
    assert count("SELECT COUNT(*) FROM tickets") == 0, "archiving never creates tickets"
    again = json.loads(cli("archive", "run", "--json").stdout)
    assert sum(f["archived"] for f in again["accounts"]["support"]) == 0
    dovecot.deliver(user, simple_message(subject="later"), folder="Projects/2026")
    third = json.loads(cli("archive", "run", "--json").stdout)
    assert sum(f["archived"] for f in third["accounts"]["support"]) == 1
    hits = json.loads(cli("archive", "search", "Angebot", "--json").stdout)
    assert [h["folder"] for h in hits] == ["Entwürfe"]
    assert len(server_uids(dovecot, user)) == 2, "nothing deleted with delete_after_days = 0"
    assert cli("archive", "verify").exit_code == 0


def test_uidvalidity_change_is_archived_again_without_losing_the_old(archived_user, dovecot,
                                                                      cli):
    user = archived_user()
    cli("archive", "run")
    dovecot.reset_uidvalidity(user)
    cli("archive", "run")
    with db() as conn:
        rows = conn.execute("SELECT COUNT(DISTINCT uidvalidity), COUNT(DISTINCT sha256) FROM "
                            "archive_messages WHERE folder = 'INBOX'").fetchone()
    assert rows[0] == 2 and rows[1] == 2, "re-mirrored; raw bytes stored once"


def test_deletion_after_n_days_only_for_verified_copies(archived_user, dovecot, cli):
    user = archived_user(days=30)
    dry = cli("archive", "run", "--dry-run")
    assert "would delete 1" in dry.stdout
    assert len(server_uids(dovecot, user)) == 2
    # Corrupt the stored copy of one old message: it must not be deleted.
    dovecot.deliver(user, simple_message(subject="old two"), mtime=OLD)
    cli("archive", "run", "--dry-run")
    with db() as conn:
        sha = conn.execute("SELECT sha256 FROM archive_messages WHERE subject = 'old two'"
                           ).fetchone()[0]
        conn.execute("UPDATE raw_messages SET data = ? WHERE sha256 = ?", (b"\x00", sha))
    result = cli("archive", "run")
    assert "deleted 1" in result.stdout and "unverified" in result.stdout
    subjects = [r["subject"] for r in json.loads(cli("archive", "list", "--json").stdout)
                if r["deleted_at"]]
    assert subjects == ["inbox old"]
    assert len(server_uids(dovecot, user)) == 2, "'inbox new' and the unverified 'old two'"
    # the same run fetched the damaged copy again (tests/test_files.py has more on that)
    assert "repaired 1" in result.stdout
    assert cli("archive", "verify").exit_code == 0


def test_export_is_readable_by_mailbox(archived_user, cli, tmp_path):
    archived_user()
    cli("archive", "run")
    out = tmp_path / "audit.mbox"
    assert cli("archive", "export", "--mbox", str(out)).exit_code == 0
    from email.header import decode_header, make_header

    subjects = sorted(str(make_header(decode_header(m["subject"])))
                      for m in mailbox.mbox(str(out)))
    assert subjects == sorted(["inbox old", "inbox new", "nested", "Grüße aus dem Entwurf"])
    md = tmp_path / "audit"
    assert cli("archive", "export", "--maildir", str(md), "--folder", "Projects/2026"
               ).exit_code == 0
    # Maildir++: the folder structure is kept (see also tests/test_files.py)
    assert [m["subject"] for m in mailbox.Maildir(str(md)).get_folder("Projects.2026")
            ] == ["nested"]
    assert cli("archive", "export").exit_code != 0


def test_archive_runs_with_mailtix_run(archived_user, cli):
    archived_user()
    result = cli("run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["archived"] == 4
