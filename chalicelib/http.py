"""HTTP plumbing shared by every route: content negotiation (JSON or XML), absolute URLs
that keep API Gateway's stage prefix, body parsing, and the error body."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response

from . import xmlcodec
from .errors import ApiError, bad_request

JSON = "application/json"
XML = "application/xml"


def wants_xml(headers: Any) -> bool:
    accept = (headers.get("accept") or "").lower()
    if "xml" not in accept:
        return False
    if "json" not in accept:
        return True
    return accept.find("xml") < accept.find("json")  # the first named wins


def render(
    request: Any, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None,
    root: str = "job",
) -> Response:
    headers = dict(headers or {})
    if body is None:
        return Response(body="", status_code=status, headers=headers)
    if wants_xml(request.headers):
        headers["Content-Type"] = XML
        text = xmlcodec.dumps(root, body)
    else:
        headers["Content-Type"] = JSON
        text = json.dumps(body, separators=(",", ":"))
    return Response(body=text, status_code=status, headers=headers)


def render_error(request: Any, err: ApiError) -> Response:
    if wants_xml(request.headers):  # <error><code>…</code></error>: the root is the error
        return render(request, err.status, err.body()["error"], err.headers, root="error")
    return render(request, err.status, err.body(), err.headers, root="error")


def base_url(request: Any) -> str:
    """scheme://host[/stage] as the client called us (so Location keeps `/api` on AWS)."""
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host") or "localhost"
    proto = headers.get("x-forwarded-proto") or ("http" if _is_local(host) else "https")
    proto = proto.split(",")[0].strip()
    ctx = request.context or {}
    full_path = ctx.get("path") or ""
    actual = request.path
    for name, value in (request.uri_params or {}).items():
        actual = actual.replace("{" + name + "}", value)
    prefix = full_path[: -len(actual)] if actual and full_path.endswith(actual) else ""
    return f"{proto}://{host}{prefix.rstrip('/')}"


def _is_local(host: str) -> bool:
    return host.startswith(("127.", "localhost", "[::1]"))


def media_type(request: Any) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def parse_submit_body(request: Any, max_bytes: int) -> dict[str, Any]:
    """The POST /v1/jobs body as a dict, from JSON (default) or XML."""
    raw = request.raw_body or b""
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
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"malformed JSON: {exc}", "malformed_body") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object", "malformed_body")
    return data


def query_params(request: Any) -> dict[str, str]:
    """Single-valued query parameters (the last value wins for repeated names)."""
    params = request.query_params
    return {k: params.getlist(k)[-1] for k in params} if params else {}


MAX_WAIT = 20


def parse_prefer(header: str | None) -> tuple[bool, float | None, str | None]:
    """RFC 7240 `Prefer`: (respond-async asked, seconds to wait or None, the wait preference
    as applied, for `Preference-Applied`). `wait=N` is seconds, Guidewire's `wait-ms=N`
    milliseconds; both are capped at 20 s, and the last one given wins."""
    respond_async, wait, applied = False, None, None
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
