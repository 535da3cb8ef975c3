"""Credentials for the mail servers: OAuth2 login flows, token storage with refresh and rotation,
and the SASL strings for XOAUTH2 / OAUTHBEARER (passwords are still in mailtix/secrets.py).

Never imports the store or the CLI: the token location comes in with the account's OAuth record
(config.model.OAuth), and what to print during a login comes in as a callback.
"""

from __future__ import annotations

from mailtix.auth.tokens import TokenInfo, access_token, login_hint, token_info

__all__ = ["TokenInfo", "access_token", "login_hint", "token_info"]
