"""Endpoints and scopes of the providers mailtix knows; `custom` takes them from the config."""

from __future__ import annotations

from mailtix.config.model import OAuth
from mailtix.record import Record

MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",  # without it Microsoft issues no refresh token
)
GOOGLE_SCOPES = ("https://mail.google.com/",)


class Endpoints(Record):
    token_url: str
    device_url: str
    authorize_url: str
    scopes: tuple[str, ...]


def endpoints(oauth: OAuth) -> Endpoints:
    """The URLs and scopes for an account: the provider's presets, overridden by the config."""
    if oauth.provider == "microsoft":
        base = f"https://login.microsoftonline.com/{oauth.tenant or 'common'}/oauth2/v2.0"
        preset = Endpoints(f"{base}/token", f"{base}/devicecode", f"{base}/authorize",
                           MICROSOFT_SCOPES)
    elif oauth.provider == "google":
        preset = Endpoints("https://oauth2.googleapis.com/token",
                           "https://oauth2.googleapis.com/device/code",
                           "https://accounts.google.com/o/oauth2/v2/auth", GOOGLE_SCOPES)
    else:
        preset = Endpoints("", "", "", ())
    return Endpoints(oauth.token_url or preset.token_url, oauth.device_url or preset.device_url,
                     oauth.authorize_url or preset.authorize_url,
                     oauth.scopes or preset.scopes)
