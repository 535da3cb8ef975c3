"""Fixtures: real Dovecot and aiosmtpd on loopback, an isolated config/data dir per test."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgserver import PG_HINT, PostgreSQL, pg_bindir  # noqa: E402
from servers import DOVECOT, DOVECOT_HINT, Dovecot, SMTPServer, TLSFiles  # noqa: E402

CORPUS = Path(os.environ.get("MAILTIX_TEST_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")


@pytest.fixture(scope="session")
def tls() -> TLSFiles:
    return TLSFiles.create(Path(tempfile.mkdtemp(prefix="mailtix-tls-")))


@pytest.fixture(scope="session")
def dovecot(tls):
    if not os.path.exists(DOVECOT):
        pytest.fail(DOVECOT_HINT, pytrace=False)
    server = Dovecot(Path(tempfile.mkdtemp(prefix="mailtix-dovecot-")), tls).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgresql():
    """One PostgreSQL server for the whole session; each test that needs it gets its own
    database (pg_store)."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail(PG_HINT, pytrace=False)
    server = PostgreSQL(bindir).start()
    yield server
    server.stop()


@pytest.fixture
def pg_store(postgresql, monkeypatch) -> str:
    """Point mailtix at a fresh, empty PostgreSQL database (the URL without its password, the
    password from MAILTIX_STORE_PASSWORD, as an admin would set it up); returns the URL."""
    url = postgresql.url(postgresql.new_database())
    monkeypatch.setenv("MAILTIX_STORE_URL", url)
    monkeypatch.setenv("MAILTIX_STORE_PASSWORD", postgresql.password)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """Run a test on both store backends: SQLite in the data dir, and PostgreSQL."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_store")
    return request.param


@pytest.fixture(scope="session")
def smtp_plain():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    """A fresh plain SMTP server per test, for tests that count what arrives."""
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_auth(tls):
    server = SMTPServer(tls, "starttls", {"sender@example.com": "smtp-secret-1"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_ssl(tls):
    server = SMTPServer(tls, "ssl", {"sender@example.com": "smtp-secret-1"}).start()
    yield server
    server.stop()


class MemoryKeyring:
    """A keyring backend kept in memory: the tests' stand-in for the desktop's secret store."""

    priority = 1

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service, user):
        return self.data.get((service, user))

    def set_password(self, service, user, password):
        self.data[(service, user)] = password

    def delete_password(self, service, user):
        self.data.pop((service, user), None)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own config, data and log dirs, an in-memory keyring, no cached secret."""
    import keyring
    from keyring.backend import KeyringBackend

    from mailtix import secrets

    class Backend(MemoryKeyring, KeyringBackend):
        pass

    backend = Backend()
    keyring.set_keyring(backend)
    secrets._cache.clear()
    monkeypatch.setattr(secrets, "_state_dir", None)
    monkeypatch.setenv("MAILTIX_CONFIG", str(tmp_path / "cfg" / "config.toml"))
    monkeypatch.setenv("MAILTIX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MAILTIX_LOG_DIR", str(tmp_path / "log"))
    for key in list(os.environ):
        if key.startswith("MAILTIX_PASSWORD_") or key.startswith("MAILTIX_STORE_"):
            monkeypatch.delenv(key)
    yield backend
    secrets._cache.clear()


@pytest.fixture
def keyring_data(isolated):
    return isolated.data


@pytest.fixture
def cli():
    """Run the CLI in-process; returns the result with .exit_code, .stdout, .stderr."""
    from typer.testing import CliRunner

    from mailtix.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def cfgdir(tmp_path) -> Path:
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def write_config(cfgdir: Path, text: str) -> Path:
    """config.toml as an admin would keep it: 0600, so mailtix's StrictModes-style check
    passes whatever the umask of the machine running the tests."""
    path = cfgdir / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def mailbox_account(dovecot, cfgdir, tls, monkeypatch):
    """A fresh Dovecot user and a config with an IMAP account `support` for it."""

    def make(name: str = "support", protocol: str = "imap", extra: str = "", fetch_extra: str = "",
             general: str = "") -> tuple[str, str]:
        user, password = dovecot.new_user()
        port = dovecot.imap if protocol == "imap" else dovecot.pop3
        text = (f"[general]\n{general}\n" if general else "") + (
            f'[accounts.{name}]\nemail = "{user}@example.com"\n{extra}\n'
            f'[accounts.{name}.fetch]\nprotocol = "{protocol}"\nhost = "127.0.0.1"\n'
            f'port = {port}\ntls = "none"\nuser = "{user}"\n{fetch_extra}\n')
        existing = cfgdir / "config.toml"
        if existing.exists() and f"[accounts.{name}]" not in existing.read_text():
            text = existing.read_text() + "\n" + text.replace(f"[general]\n{general}\n", "")
        write_config(cfgdir, text)
        from mailtix.secrets import env_name

        monkeypatch.setenv(env_name(name, "fetch"), password)
        return user, password

    return make
