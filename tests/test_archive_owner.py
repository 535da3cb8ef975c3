"""An account's `owner` is the person a backed-up mailbox belongs to: `archive list --owner`
shows that agent's mailboxes only (issue 22, per-account defaults), against Dovecot."""

from __future__ import annotations

import json

from servers import simple_message

ARCHIVE_ONLY = ('{owner}\n[accounts.{name}.tickets]\nenabled = false\n'
                '[accounts.{name}.archive]\nenabled = true\n')


def _two_mailboxes(dovecot, mailbox_account, cfgdir):
    agents = '[agents.ann]\nemail = "ann@example.com"\n[agents.bob]\nemail = "bob@example.com"\n'
    ann, _ = mailbox_account(name="ann_box", extra=ARCHIVE_ONLY.format(owner='owner = "ann"',
                                                                       name="ann_box"))
    bob, _ = mailbox_account(name="bob_box", extra=ARCHIVE_ONLY.format(owner='owner = "bob"',
                                                                       name="bob_box"))
    cfg = cfgdir / "config.toml"
    cfg.write_text(agents + cfg.read_text())
    dovecot.deliver(ann, simple_message(subject="for ann"))
    dovecot.deliver(bob, simple_message(subject="for bob"))
    dovecot.deliver(bob, simple_message(subject="for bob again"))


def test_archive_list_by_owner(dovecot, mailbox_account, cfgdir, cli):
    _two_mailboxes(dovecot, mailbox_account, cfgdir)
    assert cli("archive", "run").exit_code == 0
    everything = json.loads(cli("archive", "list", "--format", "json").stdout)
    assert len(everything) == 3
    anns = json.loads(cli("archive", "list", "--owner", "ann", "--format", "json").stdout)
    assert [(r["account"], r["owner"], r["subject"]) for r in anns] == [
        ("ann_box", "ann", "for ann")]
    bobs = json.loads(cli("archive", "list", "--owner", "bob", "--format", "json").stdout)
    assert sorted(r["subject"] for r in bobs) == ["for bob", "for bob again"]
    assert {r["owner"] for r in bobs} == {"bob"}


def test_archive_list_unknown_owner_is_a_usage_error(dovecot, mailbox_account, cfgdir, cli):
    _two_mailboxes(dovecot, mailbox_account, cfgdir)
    result = cli("archive", "list", "--owner", "carol")
    assert result.exit_code == 2
    assert "carol" in result.stderr and "ann, bob" in result.stderr
