"""Config loading and validation: every problem named with file, table and key, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_config

from mailtix.config import load
from mailtix.errors import ConfigError, ExitCode

GOOD = """
[general]
default_account = "support"
[agents.ann]
name = "Ann"
[queues.support]
agents = ["ann"]
[accounts.support]
email = "support@example.com"
since = 2026-01-01
[accounts.support.fetch]
host = "imap.example.com"
[accounts.support.smtp]
host = "smtp.example.com"
tls = "starttls"
[accounts.support.tickets]
queue = "support"
assignee = "ann"
"""


def problems(cfgdir, text: str) -> list[str]:
    write_config(cfgdir, text)
    with pytest.raises(ConfigError) as info:
        load()
    assert info.value.exit_code == ExitCode.CONFIG
    return [str(p) for p in info.value.problems]


def test_good_config_loads_with_defaults(cfgdir):
    write_config(cfgdir, GOOD)
    cfg = load()
    acct = cfg.accounts["support"]
    assert acct.fetch.port == 993 and acct.fetch.tls == "ssl"
    assert acct.smtp.port == 587 and acct.fetch.user == "support@example.com"
    assert acct.post_fetch == "seen" and acct.since.isoformat() == "2026-01-01"
    assert cfg.default_sender() is acct
    assert acct.autoresponder.interval == 86400


def test_unknown_key_suggests_the_right_one(cfgdir):
    found = problems(cfgdir, GOOD + "\n[accounts.support.autoresponder]\nintervall = '2d'\n")
    assert len(found) == 1
    assert "accounts.support.autoresponder.intervall" in found[0]
    assert "did you mean 'interval'" in found[0]
    assert str(cfgdir / "config.toml") in found[0]


def test_all_problems_reported_at_once(cfgdir):
    text = GOOD.replace('host = "imap.example.com"',
                        'host = "imap.example.com"\nport = 70000\ntls = "tls"') \
               .replace('since = 2026-01-01', 'since = "yesterday"\npost_fetch = "move"\n'
                                              'active = "yes"')
    found = "\n".join(problems(cfgdir, text))
    for expected in ("accounts.support.fetch.port: 70000 is out of range",
                     "accounts.support.fetch.tls: expected one of",
                     "accounts.support.since:", "accounts.support.move_to",
                     "accounts.support.active: expected true or false"):
        assert expected in found


def test_plain_text_to_remote_host_needs_allow_insecure(cfgdir):
    text = GOOD.replace('host = "imap.example.com"', 'host = "imap.example.com"\ntls = "none"')
    assert any("allow_insecure" in p for p in problems(cfgdir, text))
    write_config(cfgdir, text.replace('tls = "none"', 'tls = "none"\nallow_insecure = true'))
    assert load().accounts["support"].fetch.port == 143


def test_references_to_unknown_queue_and_agent(cfgdir):
    text = GOOD.replace('queue = "support"', 'queue = "nope"').replace('assignee = "ann"',
                                                                       'assignee = "zed"')
    found = "\n".join(problems(cfgdir, text))
    assert "tickets.queue: 'nope' is not defined" in found
    assert "tickets.assignee: 'zed' is not defined" in found


def test_bad_toml_names_the_file(cfgdir):
    found = problems(cfgdir, "[general\n")
    assert "not valid TOML" in found[0] and "config.toml" in found[0]


def test_account_defined_twice_is_an_error(cfgdir):
    write_config(cfgdir, GOOD)
    (cfgdir / "accounts.d").mkdir()
    (cfgdir / "accounts.d" / "support.toml").write_text('email = "x@example.com"\n')
    with pytest.raises(ConfigError) as info:
        load()
    assert "defined twice" in str(info.value)


def test_relative_paths_resolve_against_the_config_folder(cfgdir):
    (cfgdir / "ca.pem").write_text("x")
    write_config(cfgdir, GOOD.replace('host = "imap.example.com"',
                                      'host = "imap.example.com"\nca_file = "ca.pem"') +
                 '\n[general.x]\n'.replace('[general.x]\n', ''))
    assert load().accounts["support"].fetch.ca_file == cfgdir / "ca.pem"


def test_missing_config_is_built_in_defaults(cfgdir):
    cfg = load()
    assert not cfg.exists and cfg.accounts == {}


def test_example_config_loads_and_documents_every_key():
    from pathlib import Path

    from mailtix.config.schema import TOP, walk

    example = Path(__file__).parents[1] / "examples" / "config.toml"
    cfg = load(example)
    assert cfg.accounts, "the example shows at least one account"
    text = example.read_text()
    for path, _key in walk(TOP):
        leaf = path.rsplit(".", 1)[-1]
        assert f"{leaf} =" in text or f"[{path}" in text or f".{leaf}]" in text \
            or f"[[{path.replace('[]', '')}" in text or leaf in ("accounts", "queues", "agents",
                                                                 "projects"), path


def test_config_check_cli(cfgdir, cli):
    write_config(cfgdir, GOOD)
    ok = cli("config", "check")
    assert ok.exit_code == 0 and "1 account(s)" in ok.stdout
    write_config(cfgdir, GOOD.replace('email = "support@example.com"', 'emial = "x"'))
    bad = cli("config", "check")
    assert bad.exit_code == ExitCode.CONFIG
    assert "did you mean 'email'" in bad.stderr
    assert "missing required key" in bad.stderr


def test_init_refuses_to_overwrite(cfgdir, cli):
    assert cli("init").exit_code == 0
    assert load().exists
    again = cli("init")
    assert again.exit_code == ExitCode.USAGE and "--force" in again.stderr
    assert cli("init", "--force").exit_code == 0


def test_config_records_are_immutable_values():
    from mailtix.config.model import Account, Config, Server
    from mailtix.record import as_dict, replace

    server = Server("imap", "mail.example.com", 993, "ssl", "u")
    same = Server(protocol="imap", host="mail.example.com", port=993, tls="ssl", user="u")
    assert server == same and hash(server) == hash(same) and server.timeout == 20.0
    assert replace(server, port=143) != server and replace(server, port=143).port == 143
    with pytest.raises(AttributeError):
        server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Server("imap", "h", 1, "ssl")  # user is required
    with pytest.raises(TypeError):
        Server("imap", "h", 1, "ssl", "u", colour="red")  # type: ignore[call-arg]
    a, b = Account("a", "a@x"), Account("b", "b@x")
    assert a.tickets == b.tickets and a.tickets is not b.tickets  # a fresh default each
    c1, c2 = Config(Path("/x"), False), Config(Path("/x"), False)
    c1.accounts["a"] = a
    assert c2.accounts == {}  # a mutable default is never shared
    d = as_dict(Account("a", "a@x", fetch=server))
    assert d["fetch"]["host"] == "mail.example.com" and d["tickets"]["enabled"] is True
    assert "Server(protocol='imap'" in repr(server)
