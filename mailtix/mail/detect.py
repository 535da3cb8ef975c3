"""Flags from headers and structure: bounce, auto-submitted, mailing list, spam."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailtix.mail.parse import Parsed

_BOUNCE_SENDER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification|delivery failure|failure notice|returned mail|"
    r"mail delivery failed|delivery has failed|non.?delivery|unzustellbar|"
    r"nicht zugestellt|message not delivered|delivery (?:status|report)|warning: could not send)",
    re.I)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"absence|r[ée]ponse automatique|automatische antwort|vacation)", re.I)
_NOREPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|bounces?|"
                      r"notifications?)([-+_.].*)?@", re.I)


@dataclass(frozen=True)
class Flags:
    bounce: bool = False
    auto_submitted: bool = False
    list: bool = False
    spam: bool = False


def detect(p: Parsed, spam_rule: str = "") -> Flags:
    h = p.header
    report_type = ""
    if p.content_type == "multipart/report":
        m = re.search(r"report-type\s*=\s*\"?([\w-]+)", h("content-type"), re.I)
        report_type = m.group(1).lower() if m else ""
    bounce = (
        "message/delivery-status" in p.part_types
        or "message/global-delivery-status" in p.part_types
        or report_type == "delivery-status"
        or bool(_BOUNCE_SENDER.match(p.from_addr))
        or (h("return-path").strip() in ("<>", "") and "return-path" in p.headers
            and bool(_BOUNCE_SUBJECT.search(p.subject)))
        or bool(_BOUNCE_SUBJECT.search(p.subject) and p.content_type == "multipart/report")
    )
    auto = h("auto-submitted").strip().lower() not in ("", "no")
    auto = auto or any(k in p.headers for k in ("x-autoreply", "x-autorespond", "x-autoresponse"))
    auto = auto or h("precedence").strip().lower() == "auto_reply"
    auto = auto or bool(_AUTO_SUBJECT.search(p.subject))
    listed = any(k in p.headers for k in ("list-id", "list-unsubscribe", "list-post",
                                          "mailing-list", "x-mailing-list"))
    listed = listed or h("precedence").strip().lower() in ("list", "bulk")
    spam = h("x-spam-flag").strip().lower() == "yes" or h("x-spam-status").lower().startswith("yes")
    if spam_rule and ":" in spam_rule:
        name, _, value = spam_rule.partition(":")
        got = h(name.strip().lower()).strip().lower()
        spam = spam or (bool(got) and got.startswith(value.strip().lower()))
    return Flags(bounce=bounce, auto_submitted=auto and not bounce, list=listed, spam=spam)


def is_noreply(address: str) -> bool:
    return bool(_NOREPLY.match(address) or _BOUNCE_SENDER.match(address))
