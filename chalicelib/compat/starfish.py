"""Starfish ETL's `POST v1/ExecuteJobAsync`: an `execJobAsyncRequest` as JSON, `text/json`,
XML (with or without the data-contract namespace) or a form, translated to a submit.

`jobID` names a service through the tenant's mapping (`jobgate-admin set-policy
--starfish-job NAME=service`), defaulting to the service of that name. `projectID` and
`chainJobs` are accepted and ignored (a service is the whole job here)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from chalice.app import Request, Response

from .. import xmlcodec
from ..errors import ApiError, bad_request, validation_error
from ..httpio import base_url, json_object, media_type, raw_body, wants_xml
from ..tenants import Tenant

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_BODY = 256 * 1024
NAMESPACE = "http://schemas.datacontract.org/2004/07/StarfishAPI.Controllers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
VARIABLES = ("argument", "beginAtRow", "endAfterRow", "threadCount")
FIELDS = ("runID", "projectID", "jobID", "chainJobs", "loggingLevel", "webHookURL", *VARIABLES)
# our field -> Starfish's, to name Starfish's fields in validation errors
THEIRS = {"runId": "runID", "service": "jobID", "callbackUrl": "webHookURL",
          "logLevel": "loggingLevel"}
JSON_TYPES = ("application/json", "text/json")
XML_TYPES = ("application/xml", "text/xml")
FORM = "application/x-www-form-urlencoded"


def parse_body(request: Request) -> dict[str, Any]:
    raw = raw_body(request)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"body exceeds {MAX_BODY} bytes")
    kind = media_type(request) or JSON_TYPES[0]
    if kind in JSON_TYPES or kind.endswith("+json"):
        return json_object(raw, "an execJobAsyncRequest object")
    if kind in XML_TYPES:
        return _parse_xml(raw)
    if kind == FORM:
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"malformed form body: {exc}", "malformed_body") from None
    raise ApiError(415, "unsupported_media_type",
                   f"send {', '.join((*JSON_TYPES, *XML_TYPES, FORM))}, not {kind!r}")


def _parse_xml(raw: bytes) -> dict[str, Any]:
    from xml.etree.ElementTree import ParseError

    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(raw)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise bad_request(f"malformed XML: {exc}", "malformed_body") from None
    if _local(root.tag) != "execJobAsyncRequest" or _namespace(root.tag) not in ("", NAMESPACE):
        raise bad_request("the root element must be <execJobAsyncRequest>", "malformed_body")
    out: dict[str, Any] = {}
    for child in root:
        nil = child.get(f"{{{XSI}}}nil") == "true"
        out[_local(child.tag)] = None if nil else (child.text or "").strip()
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def to_submit(data: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """The execJobAsyncRequest as a POST /v1/jobs body."""
    job = data.get("jobID")
    if not isinstance(job, str) or not job.strip():
        raise validation_error([{"loc": ("jobID",), "msg": "jobID is required",
                                 "type": "missing"}], "the request has no jobID")
    out: dict[str, Any] = {"service": tenant.starfish_jobs.get(job.strip(), job.strip())}
    if data.get("runID") not in (None, ""):
        out["runId"] = data["runID"]
    if data.get("webHookURL") not in (None, ""):
        out["callbackUrl"] = data["webHookURL"]
    if data.get("loggingLevel") not in (None, ""):
        try:
            out["logLevel"] = max(0, min(3, int(str(data["loggingLevel"]).strip())))
        except ValueError:
            raise validation_error([{"loc": ("loggingLevel",), "msg": "an integer 0-3",
                                     "type": "int_parsing"}], "loggingLevel is 0-3") from None
    variables = {name: data[name] for name in VARIABLES if data.get(name) not in (None, "")}
    if variables:
        out["variables"] = variables
    return out


def execute(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    data = parse_body(request)
    try:
        req = rt.api.parse_request(to_submit(data, tenant))
        submitted = rt.api.submit(tenant, req, base_url(request))
    except ApiError as err:
        raise _their_names(err) from None
    answer = {"runID": submitted.job.run_id or submitted.job.job_id, "started": True,
              "error": None}
    headers = {"Location": f"{base_url(request)}/v1/jobs/{submitted.job.job_id}"}
    if _answer_xml(request):
        return Response(body=response_xml(answer), status_code=200,
                        headers={**headers, "Content-Type": "application/xml"})
    return Response(body=json.dumps(answer, separators=(",", ":")), status_code=200,
                    headers={**headers, "Content-Type": "application/json"})


def _answer_xml(request: Request) -> bool:
    """XML when Accept asks for it; with no Accept, in the request's own format (as ASP.NET
    Web API, which Starfish runs on, negotiates)."""
    if (request.headers.get("accept") or "").strip() in ("", "*/*"):
        return media_type(request) in XML_TYPES
    return wants_xml(request.headers)


def response_xml(answer: dict[str, Any]) -> str:
    error = answer["error"]
    error_xml = '<error i:nil="true"/>' if error is None else \
        f"<error>{xmlcodec.escape(str(error))}</error>"
    return (f'<execJobAsyncResponse xmlns:i="{XSI}" xmlns="{NAMESPACE}">{error_xml}'
            f"<runID>{xmlcodec.escape(str(answer['runID']))}</runID>"
            f"<started>{'true' if answer['started'] else 'false'}</started>"
            "</execJobAsyncResponse>")


def _their_names(err: ApiError) -> ApiError:
    """Validation errors name Starfish's fields (runID, jobID, webHookURL, ...)."""
    for detail in err.details:
        loc = list(detail.get("loc") or [])
        if loc and loc[0] == "variables" and len(loc) > 1:
            loc = loc[1:]
        elif loc and loc[0] in THEIRS:
            loc[0] = THEIRS[loc[0]]
        detail["loc"] = loc
    return err
