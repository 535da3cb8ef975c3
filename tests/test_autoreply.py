"""The autoresponder against Dovecot and aiosmtpd: a failing autoresponse never stops the run,
the loop guards decide from ingest's flags, and `explain` says what `run` does."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from conftest import CORPUS
from helpers import count, db, only_ticket, server_flags
from servers import simple_message

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends

AUTO = "[accounts.support.autoresponder]\nenabled = true\n"
FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"


@pytest.fixture
def helpdesk(dovecot, mailbox_account, smtp, cfgdir):
    """Account `support` fetching from Dovecot and sending through `smtp`."""

    def make(extra: str = "", general: str = "", name: str = "support") -> str:
        user, _ = mailbox_account(
            name,
            extra='name = "Example Support"\n'
            + extra.replace("accounts.support", f"accounts.{name}")
            + f'\n[accounts.{name}.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n',
            general=general)
        return user

    return make


def _events(kind: str) -> list[str]:
    with db() as conn:
        return [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = ?", (kind,))]


# --- issue 15 item 2: a failing autoresponse is recorded and the run goes on -----------------

def test_broken_autoreply_template_does_not_stop_the_run(helpdesk, dovecot, smtp, cli, cfgdir):
    """`{% include %}` of a missing file, a TypeError in an expression: the mail is stored,
    the failure is on the ticket, the next account is fetched and the outbox delivered."""
    user = helpdesk(extra=AUTO.replace("enabled = true", 'enabled = true\ntemplate = "broken"'))
    other = helpdesk(name="web")
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "broken.txt").write_text(
        "subject: Re: {{ message.subject }}\n---\nThanks.\n{% include 'footer.txt' %}\n")
    dovecot.deliver(user, simple_message(subject="earlier", sender="old@cust.example"))
    assert cli("run").exit_code == 0
    number = only_ticket(cli)
    body = cfgdir / "reply.txt"
    body.write_text("We are on it.\n")
    assert cli("ticket", "reply", number, "--body-file", str(body), "--queue").exit_code == 0
    assert smtp.messages == []
    dovecot.deliver(user, simple_message(subject="needs help", sender="jane@cust.example",
                                         Date=FUTURE))
    dovecot.deliver(other, simple_message(subject="for web", sender="joe@cust.example"))
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'needs help'") == 1
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'for web'") == 1
    assert [m["to"] for m in smtp.messages] == [["old@cust.example"]], "outbox delivered"
    with db() as conn:
        failed = conn.execute(
            "SELECT e.detail, t.subject FROM events e JOIN tickets t ON t.id = e.ticket_id "
            "WHERE e.kind = 'autoresponse failed'").fetchall()
    assert len(failed) == 1 and failed[0]["subject"] == "needs help"
    assert "broken" in failed[0]["detail"] and "footer.txt" in failed[0]["detail"]
    assert count("SELECT COUNT(*) FROM outbox WHERE kind = 'autoresponse'") == 0
    assert count("SELECT COUNT(*) FROM autoresponses") == 0
    # A runtime error of another kind (str + int) is handled the same way.
    (cfgdir / "templates" / "broken.txt").write_text(
        "subject: x\n---\n{{ ticket.number + 1 }}\n")
    dovecot.deliver(user, simple_message(subject="second", sender="ann@cust.example",
                                         Date=FUTURE))
    assert cli("run").exit_code == 0
    assert len(_events("autoresponse failed")) == 2
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'second'") == 1


def test_an_unsendable_sender_address_is_recorded_not_raised(helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO)
    cli("run")
    dovecot.deliver(user, simple_message(subject="local", sender="root@localhost", Date=FUTURE))
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'local'") == 1
    failed = _events("autoresponse failed")
    assert len(failed) == 1 and "root@localhost" in failed[0]
    assert smtp.messages == []


def test_a_fault_in_the_decision_itself_costs_no_mail(helpdesk, dovecot, smtp, cli,
                                                     monkeypatch):
    """Fault injection: whatever raises inside the autoresponder, the mail is committed."""
    from mailtix.mail import autoreply

    user = helpdesk(extra=AUTO)
    cli("run")

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(autoreply, "decide", broken)
    dovecot.deliver(user, simple_message(subject="still stored", Date=FUTURE))
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'still stored'") == 1
    assert _events("autoresponse failed") == ["RuntimeError: injected"]
    assert "\\Seen" in list(server_flags(dovecot, user).values())[0]


def test_include_from_the_templates_folder_works(helpdesk, dovecot, smtp, cli, cfgdir):
    user = helpdesk(extra=AUTO.replace("enabled = true", 'enabled = true\ntemplate = "withfoot"'))
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "withfoot.txt").write_text(
        "subject: Re: {{ message.subject }}\n---\nThanks.\n{% include 'footer.inc' %}\n")
    (cfgdir / "templates" / "footer.inc").write_text("Example Ltd, {{ account.email }}\n")
    cli("run")
    dovecot.deliver(user, simple_message(subject="hi", sender="jane@cust.example", Date=FUTURE))
    assert cli("run").exit_code == 0
    assert len(smtp.messages) == 1
    text = email.message_from_bytes(smtp.messages[0]["raw"], policy=policy.default) \
        .get_body(("plain",)).get_content()
    assert f"Example Ltd, {user}@example.com" in text


BROKEN = {
    "include": "subject: x\n---\n{% include 'nowhere.txt' %}\n",
    "type error": "subject: x\n---\n{{ ticket.number + 1 }}\n",
    "division": "subject: x\n---\n{{ 1 // (ticket.id - ticket.id) }}\n",
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_template_render_prints_a_clear_error(case, helpdesk, dovecot, cli, cfgdir):
    user = helpdesk()
    dovecot.deliver(user, simple_message(subject="s"))
    cli("run")
    number = only_ticket(cli)
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "bad.txt").write_text(BROKEN[case])
    result = cli("template", "render", "bad", "--ticket", number)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: template bad")
    reply = cli("ticket", "reply", number, "--template", "bad", "--queue")
    assert reply.exit_code == 2 and reply.stderr.startswith("error: template bad")
    send = cli("send", "--to", "buyer@example.org", "--template", "bad", "--queue")
    assert send.exit_code == 2, send.stdout + send.stderr
    assert "template bad" in send.stderr and "Traceback" not in send.stderr
    assert count("SELECT COUNT(*) FROM outbox") == 0


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_template_add_renders_against_sample_variables(case, cli, cfgdir, helpdesk, tmp_path):
    helpdesk()
    src = tmp_path / "bad.txt"
    src.write_text(BROKEN[case])
    result = cli("template", "add", "bad", "--file", str(src))
    assert result.exit_code == 2 and result.stderr.startswith("error: template bad"), \
        result.stdout + result.stderr
    assert not (cfgdir / "templates" / "bad.txt").exists()
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("subject: Grüße\n---\nx\n".encode("latin-1"))
    result = cli("template", "add", "latin1", "--file", str(latin1))
    assert result.exit_code == 2 and "not UTF-8" in result.stderr
    # A document template's own variables are not known in advance: they do not fail the check.
    good = tmp_path / "offer.txt"
    good.write_text("subject: Offer {{ offer_no }}\n---\nDear {{ name.title() }},\n"
                    "{% for line in items %}{{ line.qty * 2 }}{% endfor %}{{ ticket.number }}\n"
                    "{{ total|round(2) }} {{ '{:.2f}'.format(net) }} {{ '%.2f'|format(vat) }}\n"
                    "{{ discount|abs }} {{ range(count)|list }} {{ due.strftime('%d.%m.') }}\n"
                    "{% if paid > 0 %}paid{% endif %} {{ (items|length) + 1 }}\n")
    ok = cli("template", "add", "offer", "--file", str(good))
    assert ok.exit_code == 0, ok.stderr
    assert (cfgdir / "templates" / "offer.txt").exists()


def test_template_edit_keeps_the_old_version_when_the_new_one_fails(cli, cfgdir, helpdesk,
                                                                   tmp_path, monkeypatch):
    helpdesk()
    (cfgdir / "templates").mkdir()
    target = cfgdir / "templates" / "reply1.txt"
    target.write_text("subject: ok\n---\nfine\n")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'subject: x\\n---\\n{%% include \"nope.txt\" %%}\\n' "
                      "> \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    result = cli("template", "edit", "reply1")
    assert result.exit_code == 2 and "nope.txt" in result.stderr
    assert target.read_text() == "subject: ok\n---\nfine\n"


# --- issue 15 item 5: no answer to what ingest flags as automatic, list, spam or a loop -------

NO_ANSWER = {
    "routing rule spam": ({"sender": "promo@spammer.example"},
                          '[[accounts.support.rules]]\nfrom = "*@spammer.example"\n'
                          'status = "spam"\n'),
    "x-precedence bulk": ({"X_Precedence": "bulk"}, ""),
    "x-loop ours": ({"X_Loop": "OWN"}, ""),
    "read receipt": ({"MDN": "yes"}, ""),
    "mailing-list header": ({"Mailing_List": "contact list-help@lists.example"}, ""),
    "owner- sender": ({"sender": "owner-users@lists.example"}, ""),
    "-request sender": ({"sender": "users-request@lists.example"}, ""),
    "automatic reply subject": ({"subject": "Automatic reply: your message"}, ""),
    "out of office subject": ({"subject": "Out of Office: back Monday"}, ""),
    "noreply with human reply-to": ({"sender": "noreply@shop.example",
                                     "Reply_To": "Jane <jane@cust.example>"}, ""),
    "own address in other case": ({"sender": "OWNUPPER"}, ""),
}


def _mail(case: str, user: str) -> bytes:
    headers = dict(NO_ANSWER[case][0])
    subject = headers.pop("subject", f"case {case}")
    if headers.get("X_Loop") == "OWN":
        headers["X_Loop"] = f"{user}@example.com"
    if headers.get("sender") == "OWNUPPER":
        headers["sender"] = f"{user.upper()}@EXAMPLE.COM"
    if headers.pop("MDN", None):
        return _read_receipt(subject)
    return simple_message(subject=subject, Date=FUTURE, **headers)


def _read_receipt(subject: str) -> bytes:
    return (
        "From: jane@cust.example\r\nTo: support@example.com\r\n"
        f"Subject: Read: {subject}\r\nDate: {FUTURE}\r\nMessage-ID: <mdn1@cust.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
        "report-type=disposition-notification; boundary=\"b1\"\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
        "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mua.example\r\nFinal-Recipient: rfc822;jane@cust.example\r\n"
        "Original-Message-ID: <x@example.org>\r\nDisposition: manual-action/MDN-sent-manually;"
        " displayed\r\n--b1--\r\n").encode()


@pytest.mark.parametrize("case", sorted(NO_ANSWER))
def test_autoresponder_does_not_answer(case, helpdesk, dovecot, smtp, cli, tmp_path):
    user = helpdesk(extra=AUTO + NO_ANSWER[case][1])
    cli("run")
    raw = _mail(case, user)
    eml = tmp_path / "in.eml"
    eml.write_bytes(raw)
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert explained["autoresponse"].startswith("no: "), explained
    dovecot.deliver(user, raw)
    assert cli("run").exit_code == 0
    assert smtp.messages == [], f"answered: {case}"
    skipped = _events("autoresponse skipped")
    assert len(skipped) == 1
    assert f"no: {skipped[0]}" == explained["autoresponse"], "explain and run agree"


def test_autoresponse_carries_x_loop_and_a_reply_to_it_is_not_answered(
        helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO)
    cli("run")
    dovecot.deliver(user, simple_message(subject="hello", sender="jane@cust.example",
                                         Date=FUTURE))
    cli("run")
    assert len(smtp.messages) == 1
    ours = email.message_from_bytes(smtp.messages[0]["raw"], policy=policy.default)
    assert ours["X-Loop"] == f"{user}@example.com"
    # Someone else's robot echoes our mail back without keeping Auto-Submitted.
    echo = simple_message(subject="Re: hello", sender="robot@elsewhere.example", Date=FUTURE,
                          X_Loop=ours["X-Loop"])
    dovecot.deliver(user, echo)
    cli("run")
    assert len(smtp.messages) == 1
    assert any("X-Loop" in d for d in _events("autoresponse skipped"))


# --- issue 15 item 6: explain and run share one decision --------------------------------------

def test_explain_says_no_for_a_blocked_sender(helpdesk, dovecot, smtp, cli, tmp_path):
    user = helpdesk(extra=AUTO)
    cli("run")
    dovecot.deliver(user, simple_message(subject="buy now", sender="spam@junk.example",
                                         Date=FUTURE))
    cli("run")
    number = only_ticket(cli)
    smtp.messages.clear()
    assert cli("ticket", "spam", number, "--block-sender").exit_code == 0
    again = simple_message(subject="buy more", sender="spam@junk.example", Date=FUTURE)
    eml = tmp_path / "again.eml"
    eml.write_bytes(again)
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert explained["autoresponse"].startswith("no: "), explained
    assert "spam" in explained["flags"]
    dovecot.deliver(user, again)
    cli("run")
    assert smtp.messages == []
    assert f"no: {_events('autoresponse skipped')[-1]}" == explained["autoresponse"]


def test_explain_and_run_agree_on_an_answer_and_on_missing_smtp(
        dovecot, mailbox_account, helpdesk, smtp, cli, tmp_path):
    user = helpdesk(extra=AUTO)
    cli("run")
    raw = simple_message(subject="plain question", sender="jane@cust.example", Date=FUTURE)
    eml = tmp_path / "q.eml"
    eml.write_bytes(raw)
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert explained["autoresponse"] == "yes"
    dovecot.deliver(user, raw)
    cli("run")
    assert len(smtp.messages) == 1
    # The same mail explained again now meets the interval, as the next run would.
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert "within the interval" in explained["autoresponse"]
    # An account without SMTP: explain says no for the same reason run records.
    other, _ = mailbox_account("nosmtp", extra="[accounts.nosmtp.autoresponder]\nenabled = true\n")
    cli("run")
    explained = json.loads(cli("explain", str(eml), "--account", "nosmtp", "--json").stdout)
    dovecot.deliver(other, simple_message(subject="x", sender="kim@cust.example", Date=FUTURE))
    cli("run", "--account", "nosmtp")
    assert explained["autoresponse"] == f"no: {_events('autoresponse skipped')[-1]}"
    assert "SMTP" in explained["autoresponse"]


def test_decision_is_one_function_for_run_and_explain(monkeypatch, helpdesk, dovecot, cli,
                                                    tmp_path):
    """Both paths go through mail.autoreply.decide: a changed rule there changes both."""
    from mailtix.mail import autoreply

    user = helpdesk(extra=AUTO)
    cli("run")
    calls = []
    real = autoreply.decide

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result)
        return result

    monkeypatch.setattr(autoreply, "decide", spy)
    raw = simple_message(subject="q", sender="jane@cust.example", Date=FUTURE)
    eml = tmp_path / "q.eml"
    eml.write_bytes(raw)
    cli("explain", str(eml), "--account", "support")
    dovecot.deliver(user, raw)
    cli("run")
    assert len(calls) == 2 and calls[0].answer and calls[1].answer


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the parser's work, not the store's
def test_whole_corpus_through_explain(helpdesk, cli, tmp_path, backend):
    helpdesk(extra=AUTO)
    cli("run")
    files = sorted(CORPUS.rglob("*.eml"))
    assert files, CORPUS
    for path in files:
        result = cli("explain", str(path), "--account", "support", "--json")
        assert result.exit_code == 0, (path, result.stderr)
        data = json.loads(result.stdout)
        assert data["autoresponse"] == "yes" or data["autoresponse"].startswith("no: ")


def test_whole_corpus_through_run_with_the_autoresponder_on(mailbox_account, dovecot, cli):
    """Every corpus mail gets exactly one decision; none flagged automatic is answered.
    The SMTP port is closed: this is about what is queued (delivery has its own tests)."""
    from servers import free_port

    user, _ = mailbox_account(
        extra=AUTO.replace("enabled = true", 'enabled = true\ninterval = "0"')
        + f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = "none"\n',
        general="autoresponder_hourly_cap = 100000")
    cli("run")
    with db() as conn:  # the horizon back to 1970, so the corpus' old dates do not decide
        conn.execute("UPDATE account_state SET first_run_at = '1970-01-01T00:00:00+00:00'")
    files = sorted(CORPUS.rglob("*.eml"))
    for f in files:
        dovecot.deliver(user, f.read_bytes())
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    decided = (count("SELECT COUNT(*) FROM events WHERE kind IN "
                     "('autoresponse skipped', 'autoresponse failed')")
               + count("SELECT COUNT(*) FROM outbox WHERE kind = 'autoresponse'"))
    assert decided == count("SELECT COUNT(*) FROM messages WHERE direction = 'in' "
                            "AND ticket_id IS NOT NULL")
    answered = count("SELECT COUNT(*) FROM outbox WHERE kind = 'autoresponse'")
    assert 0 < answered < len(files)
    assert count("SELECT COUNT(*) FROM outbox o JOIN messages m ON m.ticket_id = o.ticket_id "
                 "AND m.direction = 'in' WHERE o.kind = 'autoresponse' AND (m.bounce + "
                 "m.auto_submitted + m.list + m.spam) > 0") == 0
