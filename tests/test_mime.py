"""mime.py must build exactly the tree email's feed parser builds, on real and on broken mail."""

from __future__ import annotations

import hashlib
import random
from email import message_from_string
from email.message import Message
from email.policy import compat32

import pytest
from test_corpus import corpus_files

from mailtix.mail import mime
from mailtix.mail.parse import parse


def tree(m: Message) -> tuple:
    payload = m._payload  # noqa: SLF001
    body = [tree(p) for p in payload] if isinstance(payload, list) else payload
    return (m._headers, m.get_unixfrom(), [type(d).__name__ for d in m.defects],  # noqa: SLF001
            m.preamble, m.epilogue, m.get_default_type(), body)


def same_tree(text: str) -> bool:
    """True when both parsers agree; Unsupported counts as agreement (the caller falls back).
    The splitter caps header blocks (issue 16): the feed parser's tree gets the same caps."""
    try:
        ours = mime.message_from_text(text)
    except mime.Unsupported:
        return True
    theirs = message_from_string(text, policy=compat32)
    for part in theirs.walk():
        mime.cap_headers(part)
    return tree(ours) == tree(theirs)


def variants(raw: bytes, rnd: random.Random, n: int) -> list[bytes]:
    """Truncated copies and copies with lines dropped, repeated or blanked: missing close
    boundaries, headers without a separator, runs of boundary lines, stray blank lines."""
    lines = raw.splitlines(keepends=True)
    out = [raw[:rnd.randrange(len(raw) + 1)] for _ in range(n)]
    for _ in range(n):
        mutated = list(lines)
        for _ in range(rnd.randrange(1, 5)):
            if not mutated:
                break
            k = rnd.randrange(len(mutated))
            op = rnd.randrange(3)
            if op == 0:
                del mutated[k]
            elif op == 1:
                mutated.insert(k, mutated[rnd.randrange(len(mutated))])
            else:
                mutated[k] = b"\n"
        out.append(b"".join(mutated))
    return out


def test_same_tree_as_the_feed_parser_on_the_corpus_and_broken_copies():
    rnd = random.Random(20261123)
    checked = unsupported = 0
    for path in corpus_files():
        raw = path.read_bytes()
        if raw.startswith(b"From "):
            raw = raw[raw.find(b"\n") + 1:]
        for v in [raw, *variants(raw, rnd, 4)]:
            text = v.decode("ascii", "surrogateescape")
            try:
                mime.message_from_text(text)
            except mime.Unsupported:
                unsupported += 1
            assert same_tree(text), (path.name, len(v))
            checked += 1
    # The fast path must be the common one, or the speed-up is not real.
    assert unsupported < checked * 0.05, (unsupported, checked)


CASES = {
    "runs of boundaries, preamble, epilogue": (
        "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n--b\n\nbody one\n--b\n"
        "Content-Type: text/html\n\n<p>x</p>\n\n--b--\n--b\nepilogue\n"),
    "no close boundary, nested": (
        "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/"
        "alternative; boundary=i\n\n--i\n\nplain\n--i\n\nmore\n--o\n\nlast\r\n"),
    "digest parts default to message/rfc822": (
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d\n"
        "Content-Type: text/plain\n\ntext\n--d--\n"),
    "delivery status blocks": (
        "Content-Type: multipart/report; boundary=r\n\n--r\n\nbounced\n--r\nContent-Type: "
        "message/delivery-status\n\nReporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\n"
        "Action: failed\n\n\n--r--\n"),
    "no start boundary, text after a close": (
        "Content-Type: multipart/mixed; boundary=z\n\nhello\n--z--\nlost\n"),
    "no boundary parameter": "Content-Type: multipart/mixed\n\njust text\n",
    "header block without separator": "Subject: x\nnot a header line\nbody\n",
    "continuation first, misplaced envelope": " folded\nSubject: y\nFrom x\nTo: a\n\nb\n",
    "bad multipart transfer encoding": (
        "Content-Type: multipart/mixed; boundary=q\nContent-Transfer-Encoding: base64\n\n"
        "--q\n\nx\n--q--"),
    "boundary look-alikes": (
        "Content-Type: multipart/mixed; boundary=ab\n\n--ab\n\n--abc\n --ab\n--ab--x\n"
        "--ab \t\r\n\nsecond\n--ab--"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_tree_on_edge_cases(name):
    text = CASES[name]
    mime.message_from_text(text)  # each of these is on the fast path
    assert same_tree(text)
    assert same_tree(text.replace("\n", "\r\n"))


def test_lone_cr_is_left_to_the_feed_parser():
    with pytest.raises(mime.Unsupported):
        mime.message_from_text("Subject: old mac\r\rbody\r")
    assert parse(b"From: a@b.c\rSubject: old mac\r\rbody\r").subject == "old mac"


def test_attached_mail_is_hashed_and_saved_as_it_arrived():
    inner = (b"Message-ID: <inner@x>\r\nSubject: a very long subject that the email generator "
             b"would fold differently than it came in\r\n  on a continuation\r\n\r\ninner body\r\n")
    raw = (b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
           b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--XX--\r\n")
    p = parse(raw, payloads=True)
    attached = p.attachments[0]
    assert attached.data == inner
    assert attached.size == len(inner) and attached.sha256 == hashlib.sha256(inner).hexdigest()


def test_absurd_nesting_is_stored_flagged_not_parsed_forever():
    depth = 2000
    body = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
                   for i in range(depth))
    body += "Content-Type: text/plain\r\n\r\nhello\r\n" + "".join(
        f"--b{i}--\r\n" for i in reversed(range(depth)))
    p = parse(("From: a@b.c\r\nSubject: deep\r\n" + body).encode())
    assert p.malformed and "nested deeper" in p.parse_error and p.subject == "deep"
    shallow = parse(("From: a@b.c\r\nSubject: ok\r\n" + "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(20))
        + "Content-Type: text/plain\r\n\r\nhello\r\n").encode())
    assert shallow.body_text == "hello" and "nested" not in shallow.parse_error
