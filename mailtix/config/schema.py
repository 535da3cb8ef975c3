"""What each table of config.toml may hold: type, default and a one-line description.

The same table drives validation, `examples/config.toml` tests and the mailtix-config(5) page.
"""

from __future__ import annotations

from typing import Any

from mailtix.config.model import (
    NEW_STATUSES,
    OAUTH_PROVIDERS,
    POST_FETCH,
    PRIORITIES,
    SASL_CHOICES,
    STATUSES,
    TLS_MODES,
)
from mailtix.locale import LANGUAGES
from mailtix.record import Record


class Key(Record):
    kind: str  # str bool int float date list duration enum table tables path email map
    default: Any = None
    doc: str = ""
    choices: tuple[str, ...] = ()
    table: dict[str, Key] | None = None
    required: bool = False
    lo: float | None = None
    hi: float | None = None


def server(protocol: str) -> dict[str, Key]:
    keys = {
        "host": Key("str", required=True, doc="server host name"),
        "port": Key("int", None, "port; default from protocol and tls", lo=1, hi=65535),
        "tls": Key("enum", "ssl", "ssl (implicit TLS), starttls, or none", TLS_MODES),
        "user": Key("str", None, "login name; default: the account's email"),
        "password_cmd": Key("str", None, "command whose standard output is the password"),
        "ca_file": Key("path", None, "PEM file of CA certificates to trust for this server"),
        "verify_tls": Key("bool", True, "verify the server certificate (keep true)"),
        "allow_insecure": Key("bool", False, "allow tls = none to a host that is not loopback"),
        "timeout": Key("float", None, "connect/read timeout in seconds; default [general] timeout",
                       lo=1, hi=600),
    }
    if protocol == "fetch":
        keys["protocol"] = Key("enum", "imap", "imap, pop3, or maildir for a local Maildir",
                               ("imap", "pop3", "maildir"))
        keys["folders"] = Key("list", ["INBOX"], "IMAP folders to fetch; '/' between levels")
        keys["path"] = Key("path", None, "the Maildir's root folder (maildir only)")
        keys["host"] = Key("str", "", "server host name (imap and pop3)")
    else:
        keys["protocol"] = Key("enum", "smtp", "smtp, or sendmail for a local MTA binary",
                               ("smtp", "sendmail"))
        keys["sendmail_path"] = Key("str", "/usr/sbin/sendmail", "sendmail binary (sendmail only)")
        keys["host"] = Key("str", "", "server host name (smtp only)")
    return keys


TICKETS = {
    "enabled": Key("bool", True, "create and thread tickets from this account's mail"),
    "queue": Key("str", "", "queue of new tickets"),
    "project": Key("str", "", "project of new tickets"),
    "assignee": Key("str", "", "agent assigned to new tickets"),
}
AUTORESPONDER = {
    "enabled": Key("bool", False, "answer new tickets automatically"),
    "interval": Key("duration", "1d", "at most one answer per sender in this time (30m, 12h, 1d)"),
    "template": Key("str", "autoreply", "template name for subject and body"),
    "on_followups": Key("bool", False, "also answer follow-ups on existing tickets"),
}
ARCHIVE = {
    "enabled": Key("bool", False, "mirror this mailbox into the local archive"),
    "folders": Key("list", ["*"], "folder glob patterns to archive"),
    "exclude": Key("list", [], "folder glob patterns to leave out"),
    "delete_after_days": Key("int", 0, "delete archived, verified mail older than this; 0 = never",
                             lo=0),
}
OAUTH = {
    "provider": Key("enum", required=True, choices=OAUTH_PROVIDERS,
                    doc="microsoft, google, or custom (give the endpoints below)"),
    "client_id": Key("str", required=True,
                     doc="the application (client) id registered with the provider"),
    "tenant": Key("str", "common", "Microsoft: directory (tenant) id or domain"),
    "scopes": Key("list", [], "scopes to ask for; default: the provider's IMAP/POP/SMTP scopes"),
    "token_url": Key("str", "", "custom: token endpoint"),
    "device_url": Key("str", "", "custom: device authorization endpoint (RFC 8628)"),
    "authorize_url": Key("str", "", "custom: authorization endpoint (for login --browser)"),
    "client_secret_cmd": Key("str", None,
                             "command printing the client secret, where the provider wants one"),
    "mechanism": Key("enum", "auto", "SASL mechanism: auto (from what the server offers), "
                                     "xoauth2 or oauthbearer", SASL_CHOICES),
    "redirect_port": Key("int", 0, "login --browser: loopback port; 0 = any free one",
                         lo=0, hi=65535),
}
RULE = {
    "from": Key("str", None, "pattern for the From address"),
    "to": Key("str", None, "pattern for any To address"),
    "cc": Key("str", None, "pattern for any Cc address"),
    "subject": Key("str", None, "pattern for the subject"),
    "regex": Key("bool", False, "patterns are regular expressions instead of globs"),
    "queue": Key("str", "", "set the queue"),
    "priority": Key("enum", "", "set the priority", ("", *PRIORITIES)),
    "assignee": Key("str", "", "set the assignee"),
    "status": Key("enum", "", "set the status", ("", *STATUSES)),
    "tags": Key("list", [], "add tags"),
    "continue": Key("bool", False, "keep evaluating later rules after this one matched"),
}
ACCOUNT = {
    "email": Key("email", required=True, doc="the account's address"),
    "name": Key("str", "", "display name used in From"),
    "reply_to": Key("email", "", "Reply-To address of mail sent as this account"),
    "active": Key("bool", True, "fetch and send for this account"),
    "since": Key("date", None, "fetch only mail on or after this date (YYYY-MM-DD)"),
    "post_fetch": Key("enum", "seen", "after storing: seen, move, delete or none", POST_FETCH),
    "move_to": Key("str", "", "folder for post_fetch = move"),
    "select": Key("enum", "all", "fetch all new mail by UID, or only unseen", ("all", "unseen")),
    "signature": Key("str", "", "plain-text signature of this account"),
    "signature_html": Key("str", "", "HTML signature of this account"),
    "sent_folder": Key("str", "", "IMAP folder that receives a copy of each sent mail"),
    "archive_bcc": Key("email", "", "address that receives a BCC copy of each sent mail"),
    "group": Key("list", [], "group account: agents informed of (watching) every new ticket"),
    "spam_header": Key("str", "", "extra spam rule 'Header: value' (X-Spam-Flag: YES is built in)"),
    "new_ticket_status": Key("enum", "new", "status of this account's new tickets",
                             NEW_STATUSES),
    "new_ticket_type": Key("str", "", "type of this account's new tickets (one of "
                                      "[general] ticket_types)"),
    "owner": Key("str", "", "agent the account belongs to: assignee of its new tickets when no "
                            "rule, tickets.assignee or queue names one"),
    "send_as": Key("list", [], "agents' own addresses that may send through this account's SMTP "
                               "(ticket reply --from ADDRESS)"),
    "notify_group": Key("bool", False, "mail each group member a short notice of a new ticket "
                                       "(never for auto-replies, bounces or spam)"),
    "trash_folder": Key("str", "", "IMAP folder for `ticket trash`; default: the server's "
                                   "\\Trash folder, else Trash"),
    "auth": Key("enum", "password", "password, or oauth2 (token from `mailtix account login`)",
                ("password", "oauth2")),
    "oauth": Key("table", table=OAUTH, doc="OAuth2 provider settings (auth = \"oauth2\")"),
    "language": Key("enum", "", "language of this account's autoreply and built-in templates: "
                                "en or de; default: [general] language", ("", *LANGUAGES)),
    "fetch": Key("table", table=server("fetch"), doc="where mail is fetched from"),
    "smtp": Key("table", table=server("smtp"), doc="how mail is sent as this account"),
    "tickets": Key("table", table=TICKETS, doc="ticket settings"),
    "autoresponder": Key("table", table=AUTORESPONDER, doc="automatic answers"),
    "archive": Key("table", table=ARCHIVE, doc="mailbox backup"),
    "rules": Key("tables", table=RULE, doc="ordered routing rules for new tickets"),
}
GENERAL = {
    "data_dir": Key("path", None, "where the store and raw mail live"),
    "default_account": Key("str", "", "account used to send when no From is given"),
    "signature": Key("str", "", "global plain-text signature"),
    "signature_html": Key("str", "", "global HTML signature"),
    "subject_tag": Key("str", "[Ticket#{number}]", "subject tag format; must contain {number}"),
    "timeout": Key("float", 20.0, "default network timeout in seconds", lo=1, hi=600),
    "backoff_max": Key("int", 3600, "longest back-off of a failing account, seconds", lo=60),
    "alert_after": Key("int", 3600, "mailtix status fails once an account failed this long, s",
                       lo=0),
    "autoresponder_hourly_cap": Key("int", 3, "most autoresponses to one sender per hour", lo=1),
    "timezone": Key("str", "", "IANA zone for shown times and Date: headers, e.g. Europe/Berlin; "
                               "default: the system's (TZ)"),
    "language": Key("enum", "", "language of messages: en or de; default: LANG/LC_MESSAGES",
                    ("", *LANGUAGES)),
    "case_sensitive_local_part": Key("bool", False, "compare the part of an address before the "
                                     "@ case-sensitively (domains never are)"),
    "status_after_reply": Key("enum", "waiting-customer", "status a ticket gets when an agent "
                                                          "replies; '' keeps it",
                              ("", *NEW_STATUSES, "closed")),
    "ticket_types": Key("list", [], "the ticket types agents may set (ticket type N TYPE)"),
    "restore_window": Key("duration", "30d", "how long `ticket restore` can undo a trash"),
    "parallel_accounts": Key("int", 1, "accounts fetched at the same time by one run (each "
                                       "with its own store connection)", lo=1, hi=64),
}
STORE = {
    "url": Key("str", "", "postgresql://USER@HOST:PORT/DB selects a shared PostgreSQL store "
                          "(several hosts); empty: SQLite in the data dir. No password here: "
                          "MAILTIX_STORE_PASSWORD, password_cmd or the keyring "
                          "(`mailtix store password`); $MAILTIX_STORE_URL wins"),
    "password_cmd": Key("str", None, "command whose standard output is the PostgreSQL "
                                     "password"),
}
QUEUE = {
    "description": Key("str", "", "what the queue is for"),
    "agents": Key("list", [], "agents of the queue"),
    "assignee": Key("str", "", "agent responsible for the queue (may be empty)"),
}
AGENT = {
    "name": Key("str", "", "full name"),
    "email": Key("email", "", "address"),
}
PROJECT = {
    "name": Key("str", "", "display name"),
    "signature": Key("str", "", "plain-text signature of the project"),
    "signature_html": Key("str", "", "HTML signature of the project"),
}
DOCUMENTS = {
    "columns": Key("map", {}, "manifest column names: FIELD = \"the file's column\" for to, cc, "
                   "bcc, attachments, doc_ref or a template variable (send-batch --map wins)"),
}
TOP = {
    "general": Key("table", table=GENERAL, doc="settings for all accounts"),
    "accounts": Key("named", table=ACCOUNT, doc="mail accounts, one table each"),
    "queues": Key("named", table=QUEUE, doc="queues (teams or persons)"),
    "agents": Key("named", table=AGENT, doc="agents who work tickets"),
    "projects": Key("named", table=PROJECT, doc="projects"),
    "documents": Key("table", table=DOCUMENTS, doc="document mails (send, send-batch)"),
    "store": Key("table", table=STORE, doc="where tickets are stored (SQLite or PostgreSQL)"),
}


def walk(table: dict[str, Key], prefix: str = ""):
    """Every documented key as (dotted path, Key); used by docs and their tests."""
    for name, key in table.items():
        path = f"{prefix}{name}"
        yield path, key
        if key.table is not None:
            inner = f"{path}.<name>." if key.kind == "named" else (
                f"{path}[]." if key.kind == "tables" else f"{path}.")
            yield from walk(key.table, inner)
