"""mailtix: company mailboxes as a ticket system, and business documents sent by mail."""

__version__ = "0.1.0"
