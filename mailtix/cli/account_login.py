"""`mailtix account login` and the OAuth2 parts of `account add`: sign in with the provider and
keep the tokens (the flows themselves are in mailtix.auth)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from mailtix.cli.common import print_json, state
from mailtix.errors import UsageError


def oauth_table(provider: str | None, client_id: str | None, tenant: str | None,
                 scopes: list[str] | None, token_url: str | None, device_url: str | None,
                 authorize_url: str | None) -> dict[str, Any]:
    if not provider or not client_id:
        raise UsageError("--auth oauth2 needs --provider (microsoft, google, custom) and "
                         "--client-id")
    out: dict[str, Any] = {"provider": provider, "client_id": client_id}
    for key, value in (("tenant", tenant), ("token_url", token_url), ("device_url", device_url),
                       ("authorize_url", authorize_url)):
        if value:
            out[key] = value
    if scopes:
        out["scopes"] = list(scopes)
    return out


def sign_in(acct, browser: bool, quiet: bool = False) -> dict[str, Any]:
    """Sign in with the account's OAuth2 provider and save the tokens; returns what may be
    shown (where they went, expiry, scopes), never a token."""
    from mailtix.auth import flows, tokens

    if acct.oauth is None:
        raise UsageError(f"account {acct.name!r} does not use OAuth2",
                         hint=f"set auth = \"oauth2\" and an [oauth] table in {acct.source}")

    def show(prompt: flows.DevicePrompt) -> None:
        # The user must see this even with --json (stdout then holds only the JSON).
        err = sys.stderr if quiet else sys.stdout
        print(f"To sign in {acct.name!r}, open {prompt.verification_uri} and enter the code "
              f"{prompt.user_code}", file=err, flush=True)
        if prompt.verification_uri_complete:
            print(f"(or open {prompt.verification_uri_complete})", file=err, flush=True)
        print("waiting for the sign-in ...", file=err, flush=True)

    if browser:
        import webbrowser

        def open_url(url: str) -> None:
            print(f"Opening the browser to sign in {acct.name!r}; if none opens, visit:\n{url}",
                  file=sys.stderr if quiet else sys.stdout, flush=True)
            webbrowser.open(url)

        token = flows.browser_login(acct.oauth, open_url)
    else:
        token = flows.device_login(acct.oauth, show)
    stored = tokens.save_login(acct.oauth, token)
    info = tokens.token_info(acct.oauth)
    assert info is not None
    return {"stored_in": stored, "expires_at": info.expires_at, "scopes": list(info.scopes),
            "refresh_token": info.has_refresh_token}


def login(ctx: typer.Context, name: str,
          browser: bool = typer.Option(False, "--browser",
                                       help="sign in in a local browser (authorization code "
                                            "with PKCE) instead of by device code"),
          json: bool = typer.Option(False, "--json")) -> None:
    """Sign an OAuth2 account in (device code by default: works over SSH) and keep its tokens."""
    acct = state(ctx).config().account(name)
    result = sign_in(acct, browser, quiet=json)
    if json:
        print_json({"account": name, **result})
        return
    when = ""
    if result["expires_at"]:
        from datetime import UTC, datetime

        when = ", access token valid until " + datetime.fromtimestamp(
            result["expires_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    typer.echo(f"signed in {name!r}: tokens stored in the {result['stored_in']}{when}")
    if not result["refresh_token"]:
        typer.echo("note: the provider gave no refresh token; you will have to sign in again "
                   "when the access token expires (Microsoft: add the offline_access scope)")
