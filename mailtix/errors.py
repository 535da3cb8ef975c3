"""One exception tree; the CLI maps each type to a message, a hint and an exit code."""

from __future__ import annotations

from enum import IntEnum

from mailtix.record import Record


class ExitCode(IntEnum):
    """Exit codes for cron and systemd; documented in mailtix(1)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    NETWORK = 5
    PARTIAL = 6
    STORE = 7
    TEMPFAIL = 75  # sysexits EX_TEMPFAIL: queued, the server said "later"; a retry follows
    INTERRUPTED = 130


class MailtixError(Exception):
    exit_code = ExitCode.FAILURE
    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class Problem(Record):
    """One configuration problem, located as precisely as the config allows."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        if self.where:
            return f"{self.file}: {self.where}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(MailtixError):
    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[Problem] | str, hint: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("config", "", problems)]
        self.problems = problems
        text = "\n".join(str(p) for p in problems)
        if len(problems) > 1:
            text = f"{len(problems)} problems in the configuration:\n" + text
        super().__init__(text, hint)


class UsageError(MailtixError):
    exit_code = ExitCode.USAGE


class SecretError(MailtixError):
    exit_code = ExitCode.AUTH


class ProtocolError(MailtixError):
    """A server said no or could not be reached; carries where and what it answered."""

    exit_code = ExitCode.NETWORK

    def __init__(self, message: str, host: str = "", command: str = "", reply: str = "",
                 hint: str | None = None) -> None:
        self.host, self.command, self.reply = host, command, reply
        super().__init__(message, hint)


class AuthError(ProtocolError):
    exit_code = ExitCode.AUTH


class NetworkError(ProtocolError):
    exit_code = ExitCode.NETWORK


class StoreError(MailtixError):
    exit_code = ExitCode.STORE


class NotFound(MailtixError):
    exit_code = ExitCode.USAGE
