"""Callback URL rules, checked at submit and again at every delivery.

Syntax (always): an absolute http(s) URL in plain printable ASCII, no credentials, a host
that is a DNS name, a dotted-quad IPv4 or a bracketed IPv6 literal (no zone id), a port
1-65535. Every other spelling is refused rather than interpreted: `1.2.3.4 x`, `0x7f.1`,
`2130706433`, a non-ASCII path. Parsers disagree on those, and a URL we accept must be
sent exactly as we checked it.

Addresses (unless JOBGATE_ALLOW_PRIVATE_CALLBACKS): https only, and every address the
host is or resolves to must be globally routable unicast. That is decided by class, not by
a list of bad examples: IPv6 must lie in 2000::/3 (global unicast) and IPv4 must be
`is_global`, and neither may be in a special-purpose block (IANA registries) nor embed an
IPv4 address (mapped, compatible, translated, 6to4, Teredo, NAT64).

Forbidden targets (always, whatever the private setting): `host:port` pairs the deployment
itself listens on, e.g. the local runner's embedded AWS endpoint and its own API."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NETS = ipaddress.ip_network
# IPv4 special-purpose blocks (IANA) that are not globally reachable unicast, plus
# multicast and 192.88.99.0/24 (6to4 relays). `is_global` covers most; this list does not
# depend on the Python version's idea of it.
_V4_RESERVED = tuple(_NETS(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))
_V6_GLOBAL_UNICAST = _NETS("2000::/3")
# Inside 2000::/3 but not a host on the Internet, or an IPv4 address in disguise.
_V6_RESERVED = tuple(_NETS(n) for n in (
    "2001::/23",       # IETF protocol assignments, Teredo 2001::/32 included
    "2001:db8::/32",   # documentation
    "2002::/16",       # 6to4 (embeds an IPv4 address)
    "3fff::/20",       # documentation
))
_EMBEDDING_V6 = tuple(_NETS(n) for n in (
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
    "2002::/16", "2001::/32",
))
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


class BadUrl(ValueError):
    """The URL is not one we send to; the message is a sentence for the client."""


@dataclass(frozen=True)
class Target:
    """A callback URL taken apart exactly as it will be sent."""

    scheme: str
    host: str               # lower case, without brackets
    port: int
    path: str               # path and query, as sent on the request line
    host_header: str        # host[:port] as written (brackets kept)
    literal: Address | None  # the host when it is an IP literal


def parse_target(url: str) -> Target:
    """Syntax only (no DNS): raises BadUrl for anything but a plain absolute http(s) URL."""
    if not isinstance(url, str) or not _URL_CHARS.fullmatch(url):
        raise BadUrl("callbackUrl must be an absolute URL in printable ASCII, without spaces "
                     "(percent-encode other characters; punycode for international names)")
    if _BAD_PERCENT.search(url):
        raise BadUrl("callbackUrl has a '%' that is not a percent-encoded byte")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadUrl("callbackUrl is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise BadUrl("callbackUrl must be an absolute https URL")
    if "@" in parts.netloc:
        raise BadUrl("callbackUrl must not carry credentials")
    if port == 0:
        raise BadUrl("callbackUrl port must be 1-65535")
    host = (parts.hostname or "").lower()
    literal = _host_literal(parts.netloc.startswith("["), host)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path,
                  parts.netloc, literal)


def _host_literal(bracketed: bool, host: str) -> Address | None:
    if bracketed:
        if "%" in host:
            raise BadUrl("callbackUrl must not carry an IPv6 zone id")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise BadUrl("callbackUrl has an invalid IPv6 literal") from None
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        raise BadUrl("callbackUrl must name a host")
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # WHATWG parsers read such a host as an IPv4 address in decimal, octal or hex parts;
        # only the canonical dotted quad has one meaning everywhere.
        try:
            return ipaddress.IPv4Address(name)
        except ValueError:
            raise BadUrl("callbackUrl host must be a DNS name or a dotted-quad IPv4 address "
                         "(no decimal, octal or hex forms)") from None
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise BadUrl("callbackUrl host is not a valid DNS name")
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> bool:
    return any(ip in net for net in _EMBEDDING_V6)


def forbidden(ip: Address) -> bool:
    """True unless `ip` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None or ip not in _V6_GLOBAL_UNICAST or embedded_ipv4(ip):
            return True
        return not ip.is_global or ip.is_multicast or any(ip in n for n in _V6_RESERVED)
    return not ip.is_global or ip.is_multicast or any(ip in n for n in _V4_RESERVED)


def getaddrinfo(host: str, port: int) -> list[tuple]:  # type: ignore[type-arg]
    """The resolver (tests replace it)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def is_local_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def resolve(host: str, port: int) -> list[Address]:
    """An IP literal as it is; localhost names as loopback (RFC 6761), never asking DNS."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if is_local_name(host):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0])
            for info in getaddrinfo(host, port)]


def _site(ip: Address) -> str:
    """This machine (any loopback or unspecified address reaches a loopback listener, in
    any spelling) or the address itself."""
    if isinstance(ip, ipaddress.IPv6Address) and not (ip.is_loopback or ip.is_unspecified):
        v4 = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip)) if ip in _EMBEDDING_V6[0] else None)
        if v4 is not None:
            ip = v4
    return "local" if ip.is_loopback or ip.is_unspecified else str(ip)


def parse_host_ports(spec: str) -> tuple[tuple[str, int], ...]:
    """`host:port,[v6]:port,...` → ((host, port), ...); entries without a port are ignored."""
    out = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        host, sep, port = entry.rpartition(":")
        if sep and port.isdigit() and host:
            out.append((host.strip("[]").lower(), int(port)))
    return tuple(out)


def _forbidden_sites(targets: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    sites = set()
    for host, port in targets:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError, ValueError):
            addresses = []
        sites |= {(_site(a), port) for a in addresses}
    return sites


def check_addresses(addresses: list[Address], port: int, allow_private: bool,
                    forbidden_targets: Iterable[tuple[str, int]] = ()) -> str | None:
    """The address rules for a host's addresses: None when all may be reached."""
    targets = tuple(forbidden_targets)
    if targets:
        sites = _forbidden_sites(targets)
        if any((_site(a), port) in sites for a in addresses):
            return "callbackUrl points at this service's own endpoints"
    if not allow_private and any(forbidden(a) for a in addresses):
        return "callbackUrl must not point at (or resolve to) a private or reserved address"
    return None


def check_callback_url(url: str, allow_private: bool, resolve_dns: bool = True,
                       forbidden_targets: Iterable[tuple[str, int]] = ()) -> str | None:
    """None when acceptable, else the reason (a sentence for the client)."""
    try:
        target = parse_target(url)
    except BadUrl as exc:
        return str(exc)
    if not allow_private:
        if target.scheme != "https":
            return "callbackUrl must use https"
        if is_local_name(target.host):
            return "callbackUrl must not point at this host"
    if target.literal is not None:
        return check_addresses([target.literal], target.port, allow_private, forbidden_targets)
    targets = tuple(forbidden_targets)
    if not resolve_dns or (allow_private and not targets):
        return None
    try:
        addresses = resolve(target.host, target.port)
    except (OSError, UnicodeError, ValueError):
        # Locally a name may come up later; the delivery checks it again.
        return None if allow_private else f"callbackUrl host {target.host!r} does not resolve"
    return check_addresses(addresses, target.port, allow_private, targets)
