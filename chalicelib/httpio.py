"""HTTP plumbing shared by every route: content negotiation (JSON or XML), absolute URLs
that keep API Gateway's stage prefix, body parsing, and the error body. (Not `http.py`:
that would shadow the standard library's name.)"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalice.app import Request, Response

from . import xmlcodec
from .errors import ApiError, bad_request
from .settings import Settings

JSON = "application/json"
XML = "application/xml"


def wants_xml(headers: Mapping[str, str]) -> bool:
    accept = (headers.get("accept") or "").lower()
    if "xml" not in accept:
        return False
    if "json" not in accept:
        return True
    return accept.find("xml") < accept.find("json")  # the first named wins


def render(
    request: Request, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None,
    root: str = "job",
) -> Response:
    headers = dict(headers or {})
    out: dict[str, str | list[str]] = {**headers}
    if body is None:
        return Response(body="", status_code=status, headers=out)
    if wants_xml(request.headers):
        out["Content-Type"] = XML
        text = xmlcodec.dumps(root, body)
    else:
        out["Content-Type"] = JSON
        text = json.dumps(body, separators=(",", ":"))
    return Response(body=text, status_code=status, headers=out)


def render_error(request: Request, err: ApiError) -> Response:
    if wants_xml(request.headers):  # <error><code>…</code></error>: the root is the error
        return render(request, err.status, err.body()["error"], err.headers, root="error")
    return render(request, err.status, err.body(), err.headers, root="error")


def base_url(request: Request, settings: Settings | None = None) -> str:
    """scheme://host[/stage] of this API, for every link we hand out (so `Location` keeps
    `/api` on AWS). The host comes from who we are, never from what a client claims:
    API Gateway's own domain (requestContext.domainName) on AWS, JOBGATE_PUBLIC_URL (the
    local runner sets its own address), else the Host header, validated. X-Forwarded-Host
    and -Proto count only behind a trusted proxy (JOBGATE_TRUSTED_PROXY), validated too."""
    settings = settings or Settings.from_env()
    headers = request.headers
    ctx = request.context or {}
    prefix = _stage_prefix(request, ctx)
    if settings.trusted_proxy and headers.get("x-forwarded-host"):
        host = _valid_host(_nearest(headers["x-forwarded-host"]), "X-Forwarded-Host")
        proto = _nearest(headers.get("x-forwarded-proto") or "https").lower()
        if proto not in ("http", "https"):
            raise bad_request("X-Forwarded-Proto must be http or https", "invalid_header")
        return f"{proto}://{host}{prefix}"
    domain = ctx.get("domainName")
    if isinstance(domain, str) and domain and _HOST.fullmatch(domain):
        return f"https://{domain}{prefix}"
    if settings.public_url:
        return f"{settings.public_url}{prefix}"
    host = _valid_host(headers.get("host") or "localhost", "Host")
    return f"{'http' if _is_local(host) else 'https'}://{host}{prefix}"


_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]{{2,45}}\])"
                   r"(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]?\d{1,4}))?")


def _nearest(value: str) -> str:
    """The value the nearest proxy set: proxies that append put theirs last."""
    return value.split(",")[-1].strip()


def _valid_host(host: str, header: str) -> str:
    if len(host) > 260 or not _HOST.fullmatch(host):
        raise bad_request(f"{header} is not a valid host[:port]", "invalid_header")
    return host


def _stage_prefix(request: Request, ctx: dict[str, Any]) -> str:
    """What API Gateway put before our route (the stage, or a custom domain's base path)."""
    full_path = ctx.get("path") or ""
    actual = request.path
    for name, value in (request.uri_params or {}).items():
        actual = actual.replace("{" + name + "}", value)
    prefix = full_path[: -len(actual)] if actual and full_path.endswith(actual) else ""
    return prefix.rstrip("/")


def _is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "[::1]") or re.fullmatch(r"127(?:\.\d{1,3}){3}", name) is not None


def raw_body(request: Request) -> bytes:
    """The request's body as bytes (Chalice types it `str | bytes`; it is bytes)."""
    body = request.raw_body or b""
    return body.encode() if isinstance(body, str) else body


def media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def parse_submit_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The POST /v1/jobs body as a dict, from JSON (default) or XML."""
    raw = raw_body(request)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    kind = media_type(request) or JSON
    if kind in (XML, "text/xml"):
        try:
            return xmlcodec.loads(raw)
        except xmlcodec.XmlError as exc:
            raise bad_request(str(exc), "malformed_body") from None
    if kind != JSON and not kind.endswith("+json"):
        raise ApiError(415, "unsupported_media_type",
                       f"send {JSON} or {XML}, not {kind!r}")
    return json_object(raw)


def json_object(raw: bytes, what: str = "a JSON object") -> dict[str, Any]:
    """A JSON body that must be one object, not nested past MAX_BODY_DEPTH (400 otherwise)."""
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"malformed JSON: {exc}", "malformed_body") from None
    if not isinstance(data, dict):
        raise bad_request(f"the body must be {what}", "malformed_body")
    if nested_deeper(data, MAX_BODY_DEPTH):
        raise bad_request(f"JSON nested deeper than {MAX_BODY_DEPTH} levels", "malformed_body")
    return data


MAX_BODY_DEPTH = 64  # a submit needs about 35 (input nests at most 30); see xmlcodec.MAX_DEPTH


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether objects/arrays nest deeper than `limit`, measured without recursion (later
    steps that recurse, such as pydantic's serializer at 255 levels, never see such a body)."""
    level = [value]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, dict | list)
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not any(isinstance(node, dict | list) for node in level):
            return False
    return True


def query_params(request: Request) -> dict[str, str]:
    """Single-valued query parameters (the last value wins for repeated names)."""
    params = request.query_params
    return {k: params.getlist(k)[-1] for k in params} if params else {}


MAX_WAIT = 20


def parse_prefer(header: str | None) -> tuple[bool, float | None, str | None]:
    """RFC 7240 `Prefer`: (respond-async asked, seconds to wait or None, the wait preference
    as applied, for `Preference-Applied`). `wait=N` is seconds, Guidewire's `wait-ms=N`
    milliseconds; both are capped at 20 s, and the last one given wins."""
    respond_async, applied = False, None
    wait: float | None = None
    for part in (header or "").split(","):
        token = part.split(";")[0].strip()
        name, _, value = token.partition("=")
        name = name.strip().lower()
        if name == "respond-async":
            respond_async = True
        elif name in ("wait", "wait-ms"):
            try:
                number = max(0, int(value.strip().strip('"')))
            except ValueError:
                continue  # an unusable preference is ignored, as RFC 7240 says
            if name == "wait":
                wait, applied = min(MAX_WAIT, number), f"wait={min(MAX_WAIT, number)}"
            else:
                ms = min(MAX_WAIT * 1000, number)
                wait, applied = ms / 1000, f"wait-ms={ms}"
    return respond_async, wait, applied
