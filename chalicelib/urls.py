"""Callback URL rules: https, and never an address inside our own network (SSRF)."""

from __future__ import annotations

from urllib.parse import urlsplit


def check_callback_url(url: str, allow_private: bool) -> str | None:
    """None when acceptable, else the reason."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "callbackUrl is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "callbackUrl must be an absolute https URL"
    if parts.username or parts.password:
        return "callbackUrl must not carry credentials"
    if allow_private:
        return None
    if parts.scheme != "https":
        return "callbackUrl must use https"
    return None
