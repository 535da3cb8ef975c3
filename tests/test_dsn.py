"""mail/dsn.py over real bounces from the corpus: RFC 3464 reports and the common
non-standard forms, delays told apart from failures, and no crash on anything else."""

from __future__ import annotations

import pytest
from conftest import CORPUS

from mailtix.mail.dsn import parse_report


def report(name: str):
    return parse_report((CORPUS / name).read_bytes())


def test_rfc3464_report_names_recipient_status_diagnostic_and_original():
    r = report("sisimai-bounces/bsd__rfc3464-01.eml")
    assert r is not None and r.standard
    (rcpt,) = r.failed
    assert rcpt.address == "userunknown@bouncehammer.jp" and rcpt.status == "5.1.1"
    assert "550 5.1.1" in rcpt.diagnostic and "User Unknown" in rcpt.diagnostic
    assert r.original_message_id == "<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>"
    assert r.original_from == "kijitora@example.org"
    assert r.original_to == ["userunknown@bouncehammer.jp"]
    assert r.original_date == "2013-10-16T05:15:35+00:00"


def test_delayed_action_is_a_delay_not_a_bounce():
    r = report("flanker/bounce__no-mx.eml")
    assert r is not None and r.failed == []
    (rcpt,) = r.delayed
    assert (rcpt.address, rcpt.status) == ("user@example.com", "4.4.4")
    assert r.original_message_id == "<19E44CA63F984902B7D654F8FF40F89D@bo>"  # rfc822-headers


def test_given_up_after_temporary_errors_is_a_bounce():
    r = report("flanker/bounce__delayed.eml")  # Action: failed, Status: 4.0.0
    assert [(x.address, x.status) for x in r.failed] == [("foo@example.com", "4.0.0")]


@pytest.mark.parametrize("name, address, status, words, original", [
    ("sisimai-bounces/bsd__lhost-qmail-01.eml", "kijitora@example.ne.jp", "5.5.0",
     "550 Unknown user", "<000000000.9999999999999.JavaMail.postmaster@mailhub>"),
    ("sisimai-bounces/bsd__lhost-exim-01.eml", "kijitora@example.ed.jp", "5.7.0",
     "Please use the smtp server", "<E1P1ce6-000Egt-GZ@e1.example.org>"),
    ("sisimai-bounces/bsd__lhost-gmail-01.eml", "userunknown@example.jp", "5.1.1",
     "User Unknown", "<D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com>"),
    ("flanker/bounce__gmail-invalid-address.eml", "awfawfawfawfawfaw@someserverhere.com",
     "5.1.0", "Recipient rejected", ""),
])
def test_non_standard_bounces(name, address, status, words, original):
    r = report(name)
    assert r is not None and not r.standard
    assert [x.address for x in r.failed] == [address]
    assert r.failed[0].status == status and words in r.failed[0].diagnostic
    if original:
        assert r.original_message_id == original


def test_not_a_bounce_says_nothing_and_nothing_crashes():
    assert report("sisimai-bounces/not__is-not-bounce-01.eml") is None
    for path in sorted(CORPUS.rglob("*.eml")):
        parse_report(path.read_bytes())  # never raises, whatever the mail
    assert parse_report(b"\xff\xfe garbage \x00") is None
