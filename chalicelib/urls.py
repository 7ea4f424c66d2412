"""Callback URL rules (SSRF): https only, and never an address inside a private network,
checked at submit and again on the address a delivery actually connects to."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# What `is_global` lets through but must not be reached: multicast, NAT64 (it maps to any
# IPv4 address, private ones included), 6to4 and Teredo (they embed IPv4 addresses).
_FORBIDDEN_NETS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "ff00::/8", "fc00::/7",
    "fe80::/10", "::ffff:0:0/96", "::/128", "::1/128", "fd00:ec2::254/128",
)]


def parse_ip(host: str) -> Address | None:
    """An IP literal in any spelling the resolver accepts (2130706433, 0x7f.1, 0177.0.0.1,
    [::1]), or None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def forbidden(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return True
    return not ip.is_global or ip.is_multicast or any(ip in n for n in _FORBIDDEN_NETS
                                                     if n.version == ip.version)


def resolve(host: str, port: int) -> list[Address]:
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_callback_url(url: str, allow_private: bool, resolve_dns: bool = True) -> str | None:
    """None when acceptable, else the reason (a sentence for the client)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
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
    host = parts.hostname
    if host.rstrip(".").lower() in ("localhost", "localhost.localdomain") or host.endswith(
            ".localhost"):
        return "callbackUrl must not point at this host"
    literal = parse_ip(host)
    if literal is not None:
        return "callbackUrl must not point at a private or reserved address" if forbidden(
            literal) else None
    if not resolve_dns:
        return None
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return f"callbackUrl host {host!r} does not resolve"
    if any(forbidden(a) for a in addresses):
        return "callbackUrl resolves to a private or reserved address"
    return None
