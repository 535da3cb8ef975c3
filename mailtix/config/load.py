"""Find, read and validate config.toml and accounts.d/*.toml into a Config."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from mailtix.config import perms
from mailtix.config.model import (
    DEFAULT_PORTS,
    Account,
    Agent,
    ArchiveSettings,
    Autoresponder,
    Config,
    Documents,
    General,
    OAuth,
    Project,
    Queue,
    Rule,
    Server,
    StoreSettings,
    Tickets,
)
from mailtix.config.schema import ACCOUNT, TOP
from mailtix.config.validate import Checker
from mailtix.errors import ConfigError, Problem
from mailtix.record import replace

APP = "mailtix"
UNSAFE_HINT = "mailtix reads no configuration that another user can change (like ssh's StrictModes)"


def config_path(explicit: str | Path | None = None) -> Path:
    """--config, then $MAILTIX_CONFIG, then the platform's user config dir."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MAILTIX_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs  # not needed when the location is given

    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def data_dir(config: Config) -> Path:
    """$MAILTIX_DATA, then [general] data_dir, then the platform's user data dir. An existing
    data dir that others can write to or that another user owns is refused."""
    path = _data_dir(config.general)
    found = perms.problems(path, directory=True)
    if found:
        raise ConfigError(found, hint="the data dir holds the store and the mail: keep it "
                                      "private to the user that runs mailtix")
    return path


def _data_dir(general: General) -> Path:
    env = os.environ.get("MAILTIX_DATA")
    if env:
        return Path(env).expanduser()
    if general.data_dir is not None:
        return general.data_dir
    import platformdirs  # not needed when the location is given

    return Path(platformdirs.user_data_dir(APP))


def read_toml(path: Path, *, private: bool = False) -> dict[str, Any]:
    """One TOML file; with `private`, refused (before parsing) when others can change it."""
    try:
        with open(path, "rb") as fh:
            if private:
                unsafe = perms.problems(path, st=os.fstat(fh.fileno()))
                if unsafe:
                    raise ConfigError(unsafe, hint=UNSAFE_HINT)
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(str(path), "", f"not valid TOML: {exc}")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None


def load(explicit: str | Path | None = None, *,
         extra_accounts: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read and check everything. `extra_accounts` are tables checked as if they were already
    in accounts.d/NAME.toml: `account add` builds and tests an account before writing it."""
    path = config_path(explicit)
    exists = path.exists()
    # Refused before anything is used: a file others can change may name a password_cmd.
    accounts_dir = path.parent / "accounts.d"
    unsafe = perms.problems(accounts_dir, directory=True)
    read: dict[Path, dict[str, Any] | ConfigError] = {}
    for file in [path] * exists + sorted(accounts_dir.glob("*.toml")):
        try:
            read[file] = read_toml(file, private=True)
        except ConfigError as exc:
            if exc.hint == UNSAFE_HINT:
                unsafe += exc.problems
            read[file] = exc
    if unsafe:
        raise ConfigError(unsafe, hint=UNSAFE_HINT)
    raw = read.get(path, {})
    if isinstance(raw, ConfigError):
        raise raw
    checker = Checker(path)
    top = checker.table(raw, TOP, "")
    sources: dict[str, tuple[dict[str, Any], Path, bool, Checker]] = {
        name: (table, path, False, checker) for name, table in top["accounts"].items()
    }
    problems = list(checker.problems)
    files = [(f.stem, f, data) for f, data in read.items() if f != path]
    files += [(n, accounts_dir / f"{n}.toml", t) for n, t in (extra_accounts or {}).items()]
    for name, file, data in files:
        if isinstance(data, ConfigError):
            problems.extend(data.problems)
            continue
        sub = Checker(file)
        table = sub.table(data, ACCOUNT, f"accounts.{name}")
        problems.extend(sub.problems)
        if name in sources:
            problems.append(Problem(str(file), f"accounts.{name}",
                                    f"account defined twice (also in {sources[name][1]})"))
            continue
        sources[name] = (table, file, True, sub)
    base = path.parent
    general = _general(top["general"] or {}, base)
    accounts = {}
    for name, (table, file, managed, _chk) in sorted(sources.items()):
        accounts[name] = _account(name, table, file, managed, general, base, problems)
    config = Config(
        path=path, exists=exists, general=general, accounts=accounts,
        queues={n: Queue(n, t["description"], tuple(t["agents"]), t["assignee"])
                for n, t in top["queues"].items()},
        agents={n: Agent(n, t["name"], t["email"]) for n, t in top["agents"].items()},
        projects={n: Project(n, t["name"], t["signature"], t["signature_html"])
                  for n, t in top["projects"].items()},
        documents=Documents(columns=dict((top["documents"] or {}).get("columns") or {})),
        store=_store(top["store"] or {}, path, problems),
    )
    problems.extend(_cross_check(config))
    if problems:
        raise ConfigError(problems, hint="fix the keys named above; `mailtix config check` "
                                         "re-checks without running anything")
    return config


def _general(t: dict[str, Any], base: Path) -> General:
    return General(
        data_dir=_path(t.get("data_dir"), base),
        default_account=t.get("default_account") or "",
        signature=t.get("signature") or "",
        signature_html=t.get("signature_html") or "",
        subject_tag=t.get("subject_tag") or "[Ticket#{number}]",
        timeout=t.get("timeout") or 20.0,
        backoff_max=t.get("backoff_max") or 3600,
        alert_after=t.get("alert_after") if t.get("alert_after") is not None else 3600,
        autoresponder_hourly_cap=t.get("autoresponder_hourly_cap") or 3,
        timezone=t.get("timezone") or "", language=t.get("language") or "",
        case_sensitive_local_part=bool(t.get("case_sensitive_local_part")),
        status_after_reply=t.get("status_after_reply", "waiting-customer"),
        ticket_types=tuple(t.get("ticket_types") or ()),
        restore_window=t.get("restore_window", 30 * 86400),
        parallel_accounts=t.get("parallel_accounts") or 1,
    )


def _store(t: dict[str, Any], path: Path, problems: list[Problem]) -> StoreSettings:
    from urllib.parse import urlsplit

    url = t.get("url") or ""
    if url:
        try:
            parts = urlsplit(url)
            secret = parts.password is not None
        except ValueError:
            parts, secret = None, False
        if parts is None or parts.scheme not in ("postgresql", "postgres"):
            problems.append(Problem(str(path), "store.url", "expected a postgresql:// URL "
                                    "(or no url for SQLite in the data dir)"))
        elif secret or "password=" in (parts.query or ""):
            # the value is never echoed: it holds a password
            problems.append(Problem(str(path), "store.url", "holds a password; keep it out "
                                    "of the config: set MAILTIX_STORE_PASSWORD, password_cmd "
                                    "or `mailtix store password`"))
    return StoreSettings(url=url, password_cmd=t.get("password_cmd"))


def _path(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _server(t: dict[str, Any] | None, kind: str, acct: dict[str, Any], where: str, file: Path,
            general: General, base: Path, problems: list[Problem]) -> Server | None:
    if t is None:
        return None
    protocol = t["protocol"]
    if protocol == "sendmail":
        return Server("sendmail", "", 0, "none", "", sendmail_path=t["sendmail_path"])
    if protocol == "maildir":
        return _maildir(t, where, file, base, problems)
    if not t.get("host"):
        problems.append(Problem(str(file), f"{where}.host",
                                f"missing required key ({protocol} host)"))
    port = t["port"] or DEFAULT_PORTS[(protocol, t["tls"])]
    host = t.get("host") or ""
    if t["tls"] == "none" and host and not _loopback(host) and not t["allow_insecure"]:
        problems.append(Problem(
            str(file), f"{where}.tls",
            f"tls = \"none\" sends the password in clear text to {host}; use ssl or starttls, "
            "or set allow_insecure = true"))
    ca = _path(t.get("ca_file"), base)
    if ca is not None and not ca.exists():
        problems.append(Problem(str(file), f"{where}.ca_file", f"file not found: {ca}"))
    return Server(
        protocol=protocol, host=host, port=port, tls=t["tls"],
        user=t.get("user") or acct["email"] or "", password_cmd=t.get("password_cmd"),
        ca_file=ca, verify_tls=t["verify_tls"], allow_insecure=t["allow_insecure"],
        timeout=t.get("timeout") or general.timeout,
        folders=tuple(t.get("folders") or ("INBOX",)),
    )


def _maildir(t: dict[str, Any], where: str, file: Path, base: Path,
             problems: list[Problem]) -> Server:
    path = _path(t.get("path"), base)
    if path is None:
        problems.append(Problem(str(file), f"{where}.path",
                                "missing required key (protocol = \"maildir\" reads the Maildir "
                                "at this path)"))
    if t.get("host"):
        problems.append(Problem(str(file), f"{where}.host", "a Maildir has no host; remove it"))
    return Server("maildir", "", 0, "none", "", path=path,
                  folders=tuple(t.get("folders") or ("INBOX",)))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _account(name: str, t: dict[str, Any], file: Path, managed: bool, general: General,
             base: Path, problems: list[Problem]) -> Account:
    where = f"accounts.{name}"
    if t["post_fetch"] == "move" and not t["move_to"]:
        problems.append(Problem(str(file), f"{where}.move_to",
                                "post_fetch = \"move\" needs a folder in move_to"))
    if t["fetch"] and t["fetch"]["protocol"] == "pop3" and t["post_fetch"] == "move":
        problems.append(Problem(str(file), f"{where}.post_fetch", "POP3 has no folders to move to"))
    oauth = _oauth(name, t, file, general, problems)
    tk = t["tickets"] or {}
    ar = t["autoresponder"] or {}
    ac = t["archive"] or {}
    rules = []
    for i, r in enumerate(t["rules"]):
        patterns = {k: r[k] for k in ("from", "to", "cc", "subject") if r.get(k) is not None}
        if not patterns:
            problems.append(Problem(str(file), f"{where}.rules[{i}]",
                                    "a rule needs at least one of from, to, cc, subject"))
        if r["regex"]:
            import re

            for k, pat in patterns.items():
                try:
                    re.compile(pat)
                except re.error as exc:
                    problems.append(Problem(str(file), f"{where}.rules[{i}].{k}",
                                            f"bad regular expression: {exc}"))
        rules.append(Rule(patterns, r["regex"], r["queue"], r["priority"], r["assignee"],
                          r["status"], tuple(r["tags"]), r["continue"]))
    fetch = _server(t["fetch"], "fetch", t, f"{where}.fetch", file, general, base, problems)
    if fetch is not None and fetch.protocol == "maildir" and ac.get("enabled"):
        problems.append(Problem(str(file), f"{where}.archive.enabled",
                                "archiving mirrors an IMAP mailbox; a Maildir is local already"))
    smtp = _server(t["smtp"], "smtp", t, f"{where}.smtp", file, general, base, problems)
    if oauth is not None:
        fetch = fetch and replace(fetch, oauth=oauth)
        smtp = smtp and (smtp if smtp.protocol == "sendmail" else replace(smtp, oauth=oauth))
    return Account(
        name=name, email=t["email"] or "", display_name=t["name"], reply_to=t["reply_to"],
        active=t["active"], fetch=fetch, smtp=smtp, auth=t["auth"], oauth=oauth,
        since=t["since"], post_fetch=t["post_fetch"], move_to=t["move_to"], select=t["select"],
        signature=t["signature"], signature_html=t["signature_html"],
        sent_folder=t["sent_folder"], archive_bcc=t["archive_bcc"], group=tuple(t["group"]),
        spam_header=t["spam_header"], language=t["language"],
        tickets=Tickets(tk.get("enabled", True), tk.get("queue", ""), tk.get("project", ""),
                        tk.get("assignee", "")),
        autoresponder=Autoresponder(ar.get("enabled", False), ar.get("interval", 86400),
                                    ar.get("template", "autoreply"), ar.get("on_followups", False)),
        archive=ArchiveSettings(ac.get("enabled", False), tuple(ac.get("folders", ["*"])),
                                tuple(ac.get("exclude", [])), ac.get("delete_after_days", 0)),
        rules=tuple(rules), source=file, managed=managed,
        new_ticket_status=t["new_ticket_status"], new_ticket_type=t["new_ticket_type"],
        owner=t["owner"], send_as=tuple(a.lower() for a in t["send_as"]),
        notify_group=t["notify_group"], trash_folder=t["trash_folder"],
    )


def _oauth(name: str, t: dict[str, Any], file: Path, general: General,
           problems: list[Problem]) -> OAuth | None:
    where = f"accounts.{name}"
    o = t["oauth"]
    if t["auth"] != "oauth2":
        if o is not None:
            problems.append(Problem(str(file), f"{where}.oauth",
                                    "OAuth2 settings without auth = \"oauth2\""))
        return None
    if o is None:
        problems.append(Problem(str(file), f"{where}.oauth",
                                "auth = \"oauth2\" needs an [oauth] table with provider and "
                                "client_id"))
        return None
    if o["provider"] == "custom" and not o["token_url"]:
        problems.append(Problem(str(file), f"{where}.oauth.token_url",
                                "provider = \"custom\" needs token_url (and device_url or "
                                "authorize_url to log in)"))
    for key in ("token_url", "device_url", "authorize_url"):
        url = o[key]
        if url and not _secure_url(url):
            problems.append(Problem(str(file), f"{where}.oauth.{key}",
                                    f"{url!r} must be an https:// URL (http only on loopback)"))
    return OAuth(
        account=name, provider=o["provider"] or "custom", client_id=o["client_id"] or "",
        token_dir=_data_dir(general) / "oauth", tenant=o["tenant"] or "common",
        scopes=tuple(o["scopes"]), token_url=o["token_url"], device_url=o["device_url"],
        authorize_url=o["authorize_url"], client_secret_cmd=o["client_secret_cmd"],
        mechanism=o["mechanism"], redirect_port=o["redirect_port"],
    )


def _secure_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and bool(parts.hostname) and _loopback(parts.hostname)


def _account_defaults(config: Config, name: str, acct) -> list[Problem]:
    """new_ticket_type from the configured list; send_as real addresses no account owns."""
    import re

    src, out = str(acct.source), []
    types = config.general.ticket_types
    if acct.new_ticket_type and acct.new_ticket_type not in types:
        known = ", ".join(types) or "none: set [general] ticket_types"
        out.append(Problem(src, f"accounts.{name}.new_ticket_type",
                           f"{acct.new_ticket_type!r} is not a ticket type (known: {known})"))
    accounts = {a.email.lower(): n for n, a in config.accounts.items()}
    for addr in acct.send_as:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", addr):
            out.append(Problem(src, f"accounts.{name}.send_as", f"not an e-mail address: {addr!r}"))
        elif addr in accounts:
            out.append(Problem(src, f"accounts.{name}.send_as",
                               f"{addr} is the address of account {accounts[addr]!r}"))
    return out


def _cross_check(config: Config) -> list[Problem]:
    problems = []
    f = str(config.path)
    if "{number}" not in config.general.subject_tag:
        problems.append(Problem(f, "general.subject_tag", "must contain {number}"))
    if config.general.timezone:
        from mailtix.locale import valid_zone

        if not valid_zone(config.general.timezone):
            problems.append(Problem(f, "general.timezone",
                                    f"unknown time zone {config.general.timezone!r}; expected an "
                                    "IANA name such as Europe/Berlin or UTC"))
    if config.general.default_account and config.general.default_account not in config.accounts:
        problems.append(Problem(f, "general.default_account",
                                f"no account named {config.general.default_account!r}"))
    for name, acct in config.accounts.items():
        src = str(acct.source)
        refs = [("tickets.queue", acct.tickets.queue, config.queues),
                ("tickets.project", acct.tickets.project, config.projects),
                ("tickets.assignee", acct.tickets.assignee, config.agents)]
        refs += [(f"rules[{i}].queue", r.queue, config.queues) for i, r in enumerate(acct.rules)]
        refs += [(f"rules[{i}].assignee", r.assignee, config.agents)
                 for i, r in enumerate(acct.rules)]
        refs += [("group", agent, config.agents) for agent in acct.group]
        refs += [("owner", acct.owner, config.agents)]
        problems.extend(_account_defaults(config, name, acct))
        for key, value, known in refs:
            if value and known and value not in known:
                names = ", ".join(sorted(known))
                problems.append(Problem(src, f"accounts.{name}.{key}",
                                        f"{value!r} is not defined (known: {names})"))
        if acct.post_fetch == "move" and acct.fetch and acct.fetch.protocol == "imap" \
                and acct.move_to in acct.fetch.folders:
            problems.append(Problem(src, f"accounts.{name}.move_to",
                                    "the move target is also a fetched folder"))
    seen: dict[str, str] = {}
    for name, acct in config.accounts.items():
        key = config.address_key(acct.email) if acct.email else ""
        if key and key in seen:
            problems.append(Problem(
                str(acct.source), f"accounts.{name}.email",
                f"{acct.email!r} is also the address of account {seen[key]!r} (addresses are "
                "compared without regard to case); give each address one account"))
        elif key:
            seen[key] = name
    for qname, queue in config.queues.items():
        for agent in (*queue.agents, *([queue.assignee] if queue.assignee else [])):
            if config.agents and agent not in config.agents:
                problems.append(Problem(f, f"queues.{qname}.agents", f"unknown agent {agent!r}"))
    return problems
