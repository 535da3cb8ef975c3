"""The validated configuration: immutable records (see record.py) that every command receives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mailtix.record import Factory, Record

TLS_MODES = ("ssl", "starttls", "none")
POST_FETCH = ("seen", "move", "delete", "none")
STATUSES = ("new", "open", "waiting-customer", "waiting-internal", "closed", "spam")
# Set only by `ticket trash` (undone by `ticket restore`), never by `ticket status` or a rule.
DELETED = "deleted"
NEW_STATUSES = ("new", "open", "waiting-customer", "waiting-internal")
PRIORITIES = ("low", "normal", "high", "urgent")
DEFAULT_PORTS = {
    ("imap", "ssl"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
    ("pop3", "ssl"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110,
    ("smtp", "ssl"): 465, ("smtp", "starttls"): 587, ("smtp", "none"): 25,
}


OAUTH_PROVIDERS = ("microsoft", "google", "custom")
SASL_CHOICES = ("auto", "xoauth2", "oauthbearer")


class OAuth(Record):
    """An account's OAuth2 settings; the presets of a provider are filled in by mailtix.auth.
    The tokens themselves live in the keyring or in token_dir, never here."""

    account: str
    provider: str
    client_id: str
    token_dir: Path  # the data dir's oauth/ folder: a 0600 file per account when no keyring
    tenant: str = "common"
    scopes: tuple[str, ...] = ()
    token_url: str = ""
    device_url: str = ""
    authorize_url: str = ""
    client_secret_cmd: str | None = None
    mechanism: str = "auto"
    redirect_port: int = 0


class Server(Record):
    protocol: str  # imap | pop3 | maildir | smtp | sendmail
    host: str
    port: int
    tls: str
    user: str
    password_cmd: str | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    allow_insecure: bool = False
    timeout: float = 20.0
    folders: tuple[str, ...] = ("INBOX",)
    sendmail_path: str = "/usr/sbin/sendmail"
    oauth: OAuth | None = None  # set when the account logs in with an OAuth2 token
    path: Path | None = None  # protocol = "maildir": the Maildir's root

    def describe(self) -> str:
        if self.protocol == "sendmail":
            return f"sendmail ({self.sendmail_path})"
        if self.protocol == "maildir":
            return f"maildir {self.path}"
        return f"{self.protocol}://{self.host}:{self.port} ({self.tls})"


class Tickets(Record):
    enabled: bool = True
    queue: str = ""
    project: str = ""
    assignee: str = ""


class Autoresponder(Record):
    enabled: bool = False
    interval: int = 86400
    template: str = "autoreply"
    on_followups: bool = False


class ArchiveSettings(Record):
    enabled: bool = False
    folders: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    delete_after_days: int = 0


class Rule(Record):
    """A routing rule: every given pattern must match; the first matching rule wins."""

    patterns: dict[str, str]
    regex: bool = False
    queue: str = ""
    priority: str = ""
    assignee: str = ""
    status: str = ""
    tags: tuple[str, ...] = ()
    continue_: bool = False


class Account(Record):
    name: str
    email: str
    display_name: str = ""
    reply_to: str = ""
    active: bool = True
    fetch: Server | None = None
    smtp: Server | None = None
    since: date | None = None
    post_fetch: str = "seen"
    move_to: str = ""
    select: str = "all"
    signature: str = ""
    signature_html: str = ""
    sent_folder: str = ""
    archive_bcc: str = ""
    group: tuple[str, ...] = ()
    spam_header: str = ""
    language: str = ""  # "" = [general] language
    tickets: Tickets = Factory(Tickets)
    autoresponder: Autoresponder = Factory(Autoresponder)
    archive: ArchiveSettings = Factory(ArchiveSettings)
    rules: tuple[Rule, ...] = ()
    source: Path | None = None  # the file that defines it
    managed: bool = False  # True when it lives in accounts.d/ and the CLI may rewrite it
    auth: str = "password"  # password | oauth2
    oauth: OAuth | None = None
    new_ticket_status: str = "new"
    new_ticket_type: str = ""
    owner: str = ""  # the agent the account belongs to: default assignee of its new tickets
    send_as: tuple[str, ...] = ()  # agents' own addresses sent through this account's SMTP
    notify_group: bool = False
    trash_folder: str = ""  # '' = the server's \Trash folder, else "Trash"


class Queue(Record):
    name: str
    description: str = ""
    agents: tuple[str, ...] = ()
    assignee: str = ""


class Agent(Record):
    name: str
    display_name: str = ""
    email: str = ""


class Project(Record):
    name: str
    display_name: str = ""
    signature: str = ""
    signature_html: str = ""


class General(Record):
    data_dir: Path | None = None
    default_account: str = ""
    signature: str = ""
    signature_html: str = ""
    subject_tag: str = "[Ticket#{number}]"
    timeout: float = 20.0
    backoff_max: int = 3600
    alert_after: int = 3600
    autoresponder_hourly_cap: int = 3
    timezone: str = ""
    language: str = ""
    case_sensitive_local_part: bool = False
    status_after_reply: str = "waiting-customer"
    ticket_types: tuple[str, ...] = ()
    restore_window: int = 30 * 86400
    parallel_accounts: int = 1


class StoreSettings(Record):
    url: str = ""  # empty: SQLite in the data dir
    password_cmd: str | None = None


class Documents(Record):
    columns: dict[str, str] = Factory(dict)  # our field -> the manifest's column


class Config(Record):
    path: Path
    exists: bool
    general: General = Factory(General)
    accounts: dict[str, Account] = Factory(dict)
    queues: dict[str, Queue] = Factory(dict)
    agents: dict[str, Agent] = Factory(dict)
    projects: dict[str, Project] = Factory(dict)
    documents: Documents = Factory(Documents)
    store: StoreSettings = Factory(StoreSettings)

    @property
    def accounts_dir(self) -> Path:
        return self.path.parent / "accounts.d"

    def account(self, name: str) -> Account:
        from mailtix.errors import NotFound

        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none configured"
            raise NotFound(f"no account named {name!r} (accounts: {known})") from None

    def default_sender(self) -> Account | None:
        if self.general.default_account:
            return self.accounts.get(self.general.default_account)
        senders = [a for name, a in sorted(self.accounts.items()) if a.smtp is not None]
        return senders[0] if senders else None

    def language_of(self, account: Account | None) -> str:
        """The language an account's automatic mail is written in."""
        from mailtix.locale import language

        return language((account.language if account else "") or self.general.language)

    def address_key(self, address: str) -> str:
        """An address as compared: the domain always case-insensitively (RFC 5321 2.4), the
        local part too unless [general] case_sensitive_local_part says otherwise."""
        local, at, domain = address.strip().rpartition("@")
        if not at:
            return address.strip().lower()
        if not self.general.case_sensitive_local_part:
            local = local.lower()
        return f"{local}@{domain.lower()}"

    def own_addresses(self) -> set[str]:
        return {self.address_key(a.email) for a in self.accounts.values() if a.email} | {
            self.address_key(a.reply_to) for a in self.accounts.values() if a.reply_to
        } | {self.address_key(s) for a in self.accounts.values() for s in a.send_as}
