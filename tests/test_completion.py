"""Shell completion of names through click's own completion machinery (what `mailtix
--install-completion` wires into bash/zsh/fish): accounts, tickets, templates, queues,
agents and folders."""

from __future__ import annotations

import json

from conftest import write_config
from servers import simple_message


def complete(args: list[str], incomplete: str) -> list[str]:
    """What bash gets back for `mailtix ARGS INCOMPLETE<TAB>` (the protocol of the script
    `mailtix --install-completion bash` installs)."""
    from typer.testing import CliRunner

    from mailtix.cli.main import app

    words = ["mailtix", *args, incomplete]
    result = CliRunner().invoke(app, [], prog_name="mailtix", env={
        "_MAILTIX_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words),
        "COMP_CWORD": str(len(words) - 1)})
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line]


CONFIG = """
[agents.ann]
[agents.bob]
[queues.support]
description = "first level"
[queues.billing]
[accounts.support]
email = "support@example.com"
[accounts.sales]
email = "sales@example.com"
"""


def test_names_from_the_config(cfgdir, tmp_path):
    write_config(cfgdir, CONFIG)
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "offer.txt").write_text("Subject: Offer\n\nHi\n")
    assert complete(["ticket", "list", "--account"], "") == ["sales", "support"]
    assert complete(["ticket", "list", "--account"], "su") == ["support"]
    assert complete(["ticket", "list", "--queue"], "") == ["billing", "support"]
    assert complete(["ticket", "queue", "1"], "bi") == ["billing"]
    assert complete(["ticket", "assign", "1"], "") == ["ann", "bob"]
    assert complete(["ticket", "reply", "1", "--template"], "") == ["autoreply", "offer"]
    assert complete(["template", "show"], "of") == ["offer"]
    assert complete(["ticket", "note"], "") == [], "no store yet: nothing, and none is made"
    assert not (tmp_path / "data" / "mailtix.sqlite3").exists()


def test_ticket_numbers_and_folders_from_the_store(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(fetch_extra='folders = ["INBOX", "Projects/Alpha"]')
    client = dovecot.imap_client(user)
    client.create("Projects/Alpha")
    client.logout()
    dovecot.deliver(user, simple_message(subject="first"))
    dovecot.deliver(user, simple_message(subject="second"))
    assert cli("run").exit_code == 0
    numbers = sorted(r["number"] for r in json.loads(cli("ticket", "list", "--json").stdout))
    assert sorted(complete(["ticket", "note"], "")) == numbers
    assert complete(["ticket", "trash"], numbers[1]) == [numbers[1]]
    assert complete(["ticket", "show"], numbers[0]) == [numbers[0]]
    assert sorted(complete(["ticket", "reply"], numbers[0][:8])) == numbers
    assert complete(["ticket", "move", numbers[0], "--folder"], "") == ["INBOX",
                                                                         "Projects/Alpha"]
    assert complete(["ticket", "move", numbers[0], "--folder"], "Pro") == ["Projects/Alpha"]


def test_a_broken_config_completes_nothing(cfgdir):
    write_config(cfgdir, "[accounts.x\n")
    assert complete(["ticket", "list", "--account"], "") == []
    assert complete(["ticket", "note"], "") == []
