"""Issue 11: no input, however malformed, gets a 5xx. A corpus of malformed requests is
replayed across every route through the in-process Chalice client; each must answer a 4xx
with our error body (JSON, or XML when asked). Then the rules behind the worst cases:
the stored-item bound (a job accepted at the bound can still run, fail its webhooks and be
canceled), links that ignore client-supplied forwarding headers, unknown routes and
methods, and XML lists that nest once."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from typing import Any, NamedTuple

import pytest

from tests.conftest import KEY_A, KEY_B, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
J, X = "application/json", "application/xml"


class Case(NamedTuple):
    name: str
    method: str
    path: str
    raw: bytes | str | None = None
    ctype: str | None = J
    headers: dict[str, str] | None = None
    status: int | None = None  # the exact 4xx expected, when one is
    code: str | None = None


def basic(user: str | bytes, password: str) -> str:
    raw = user if isinstance(user, bytes) else user.encode()
    return "Basic " + base64.b64encode(raw + b":" + password.encode()).decode()


def js(value: Any) -> str:
    return json.dumps(value)


def deep(n: int, open_: str = "[", close: str = "]", core: str = "1") -> str:
    return open_ * n + core + close * n


def deep_obj(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


def xml_job(inner: str) -> bytes:
    return f"<job><service>echo</service>{inner}</job>".encode()


def submit_json(name: str, raw: str | bytes, status: int | None = None,
                code: str | None = None) -> Case:
    return Case(name, "POST", "/v1/jobs", raw, J, None, status, code)


def submit_xml(name: str, raw: bytes, status: int | None = None, code: str | None = None,
               ctype: str = X) -> Case:
    return Case(name, "POST", "/v1/jobs", raw, ctype, None, status, code)


def echo_input(value: str) -> str:
    return '{"service":"echo","input":{"x":' + value + "}}"


BIG_VARS = {f"V{i}": "v" * 4096 for i in range(100)}

BODIES = [
    # -- bad JSON ------------------------------------------------------------------------
    submit_json("empty-body", b"", 400, "malformed_body"),
    submit_json("open-brace", "{", 400, "malformed_body"),
    submit_json("array-body", "[]", 400, "malformed_body"),
    submit_json("number-body", "1", 400, "malformed_body"),
    submit_json("string-body", '"echo"', 400, "malformed_body"),
    submit_json("null-body", "null", 400, "malformed_body"),
    submit_json("true-body", "true", 400, "malformed_body"),
    submit_json("trailing-garbage", '{"service":"echo"}x', 400, "malformed_body"),
    submit_json("two-objects", '{"service":"echo"}{"service":"echo"}', 400, "malformed_body"),
    submit_json("single-quotes", "{'service':'echo'}", 400, "malformed_body"),
    submit_json("trailing-comma", '{"service":"echo",}', 400, "malformed_body"),
    submit_json("comment", '{"service":"echo"/* x */}', 400, "malformed_body"),
    submit_json("invalid-utf8", b'{"service":"\xff\xfe"}', 400, "malformed_body"),
    submit_json("overlong-utf8", b'{"service":"\xc0\xaf"}', 400, "malformed_body"),
    submit_json("nul-bytes", b"\x00" * 64, 400, "malformed_body"),
    submit_json("binary", bytes(range(256)), 400, "malformed_body"),
    submit_json("unterminated-string", '{"service":"echo', 400, "malformed_body"),
    submit_json("bad-escape", '{"service":"\\x41"}', 400, "malformed_body"),
    submit_json("int-4301-digits", echo_input("9" * 4301), 400, "malformed_body"),
    # -- deep nesting ------------------------------------------------------------------------
    submit_json("input-31-deep", echo_input(deep(31)), 422, "validation_error"),
    submit_json("input-64-deep", echo_input(deep(64)), 400, "malformed_body"),
    submit_json("input-255-deep-lists", echo_input(deep(255)), 400, "malformed_body"),
    submit_json("input-256-deep-objects", echo_input(deep_obj(256)), 400, "malformed_body"),
    submit_json("input-300-deep-mixed", echo_input(deep(150, '{"a":[', "]}")), 400,
                "malformed_body"),
    submit_json("input-900-deep", echo_input(deep(900)), 400, "malformed_body"),
    submit_json("input-100000-deep", echo_input(deep(100_000)), 400, "malformed_body"),
    submit_json("chain-input-255-deep", js({"service": "echo", "chain": [
        {"service": "echo", "input": {"x": 1}}]}).replace('{"x": 1}', deep_obj(255)), 400,
        "malformed_body"),
    submit_json("chain-input-30-deep", js({"service": "echo", "chain": [
        {"service": "echo", "input": {"x": 1}}]}).replace('{"x": 1}', deep_obj(30)), 422,
        "validation_error"),
    # -- numbers DynamoDB cannot hold ------------------------------------------------------
    submit_json("nan", echo_input("NaN"), 422, "validation_error"),
    submit_json("infinity", echo_input("Infinity"), 422, "validation_error"),
    submit_json("minus-infinity", echo_input("-Infinity"), 422, "validation_error"),
    submit_json("float-overflow", echo_input("1e999"), 422, "validation_error"),
    submit_json("float-1e300", echo_input("1e300"), 422, "validation_error"),
    submit_json("float-1e-300", echo_input("1e-300"), 422, "validation_error"),
    submit_json("int-39-digits", echo_input("1" * 39), 422, "validation_error"),
    submit_json("int-400-digits", echo_input("9" * 400), 422, "validation_error"),
    submit_json("int-10e40", echo_input("1" + "0" * 40), 422, "validation_error"),
    submit_json("nan-in-list", echo_input("[1,2,NaN]"), 422, "validation_error"),
    submit_json("nan-in-chain", '{"service":"echo","chain":[{"service":"echo","input":'
                '{"x":NaN}}]}', 422, "validation_error"),
    submit_json("huge-sleep-seconds", '{"service":"sleep","input":{"seconds":' + "9" * 400
                + "}}", 422),
    submit_json("nan-sleep-seconds", '{"service":"sleep","input":{"seconds":NaN}}', 422),
    # -- strings DynamoDB cannot hold ------------------------------------------------------
    submit_json("surrogate-input-value", echo_input('"\\ud800"'), 422, "validation_error"),
    submit_json("surrogate-input-key", '{"service":"echo","input":{"\\udfff":1}}', 422,
                "validation_error"),
    submit_json("surrogate-variable-value", '{"service":"echo","variables":{"A":"\\ud800"}}',
                422, "validation_error"),
    submit_json("surrogate-variable-name", '{"service":"echo","variables":{"\\ud800":"a"}}',
                422, "validation_error"),
    submit_json("surrogate-chain-variable", '{"service":"echo","chain":[{"service":"echo",'
                '"variables":{"A":"\\udc00"}}]}', 422, "validation_error"),
    submit_json("surrogate-callback-url", '{"service":"echo","callbackUrl":"https://a.example/'
                '\\ud800"}', 422),
    submit_json("surrogate-run-id", '{"service":"echo","runId":"\\ud800"}', 422),
    submit_json("surrogate-service", '{"service":"\\ud800"}', 422),
    submit_json("empty-input-key", '{"service":"echo","input":{"":1}}', 422, "validation_error"),
    # -- sizes ---------------------------------------------------------------------------
    submit_json("100-variables-of-4kb", js({"service": "echo", "variables": BIG_VARS}), 413,
                "payload_too_large"),
    submit_json("600kb-input", js({"service": "echo", "input": {"x": "a" * 600_000}}), 413,
                "payload_too_large"),
    submit_json("340kb-input-and-variables", js({"service": "echo", "input": {
        "x": "a" * 250_000}, "variables": {f"V{i}": "v" * 900 for i in range(100)}}), 413,
        "payload_too_large"),
    submit_json("chain-of-big-variables", js({"service": "echo", "chain": [
        {"service": "echo", "variables": {f"V{i}": "v" * 4000 for i in range(20)}}] * 5}), 413,
        "payload_too_large"),
    submit_json("body-over-4mb", js({"service": "echo", "input": {"x": "a" * 4_200_000}}), 413,
                "payload_too_large"),
    # -- wrong types and values --------------------------------------------------------------
    submit_json("service-int", '{"service":1}', 422),
    submit_json("service-list", '{"service":["echo"]}', 422),
    submit_json("service-null", '{"service":null}', 422),
    submit_json("service-empty", '{"service":""}', 422),
    submit_json("service-bool", '{"service":true}', 422),
    submit_json("service-missing", '{"input":{}}', 422),
    submit_json("service-too-long", js({"service": "e" * 65}), 422),
    submit_json("service-unknown", '{"service":"nope"}', 404, "unknown_service"),
    submit_json("service-nul", '{"service":"echo\\u0000"}', 404),
    submit_json("input-list", '{"service":"echo","input":[1,2]}', 422),
    submit_json("input-string", '{"service":"echo","input":"x"}', 422),
    submit_json("input-number", '{"service":"echo","input":5}', 422),
    submit_json("variables-list", '{"service":"echo","variables":[[[]]]}', 422),
    submit_json("variables-string", '{"service":"echo","variables":"A=1"}', 422),
    submit_json("variable-object-value", '{"service":"echo","variables":{"A":{"b":1}}}', 422),
    submit_json("variable-null-value", '{"service":"echo","variables":{"A":null}}', 422),
    submit_json("variable-empty-name", '{"service":"echo","variables":{"":"a"}}', 422),
    submit_json("variable-long-name", js({"service": "echo", "variables": {"N" * 129: "a"}}),
                422),
    submit_json("variable-long-value", js({"service": "echo", "variables": {"A": "a" * 4097}}),
                422),
    submit_json("101-variables", js({"service": "echo",
                                     "variables": {f"V{i}": "x" for i in range(101)}}), 422),
    submit_json("run-id-37", js({"service": "echo", "runId": "r" * 37}), 422),
    submit_json("run-id-bad-chars", js({"service": "echo", "runId": "a b/c"}), 422),
    submit_json("run-id-int", '{"service":"echo","runId":5}', 422),
    submit_json("run-id-unicode", js({"service": "echo", "runId": "\u00e9\u2603"}), 422),
    submit_json("callback-int", '{"service":"echo","callbackUrl":5}', 422),
    submit_json("callback-object", '{"service":"echo","callbackUrl":{"a":1}}', 422),
    submit_json("callback-ftp", js({"service": "echo", "callbackUrl": "ftp://a.example/x"}), 422),
    submit_json("callback-javascript", js({"service": "echo",
                                           "callbackUrl": "javascript:alert(1)"}), 422),
    submit_json("callback-broken-ipv6", js({"service": "echo", "callbackUrl": "http://[::1"}),
                422),
    submit_json("callback-too-long", js({"service": "echo",
                                         "callbackUrl": "https://a.example/" + "x" * 2048}), 422),
    submit_json("log-level-negative", '{"service":"echo","logLevel":-1}', 422),
    submit_json("log-level-4", '{"service":"echo","logLevel":4}', 422),
    submit_json("log-level-string", '{"service":"echo","logLevel":"high"}', 422),
    submit_json("log-level-float", '{"service":"echo","logLevel":1.5}', 422),
    submit_json("log-level-huge", '{"service":"echo","logLevel":' + "9" * 4000 + "}", 422),
    submit_json("log-level-nan", '{"service":"echo","logLevel":NaN}', 422),
    submit_json("chain-object", '{"service":"echo","chain":{"service":"echo"}}', 422),
    submit_json("chain-of-junk", '{"service":"echo","chain":[1,"x",null,[]]}', 422),
    submit_json("chain-11-steps", js({"service": "echo", "chain": [{"service": "echo"}] * 11}),
                422),
    submit_json("chain-step-without-service", '{"service":"echo","chain":[{"input":{}}]}', 422),
    submit_json("chain-step-unknown-service", '{"service":"echo","chain":[{"service":"ghost"}]}',
                404, "unknown_service"),
    submit_json("chain-step-bad-input", '{"service":"echo","chain":[{"service":"sleep",'
                '"input":{"seconds":-1}}]}', 422),
    submit_json("extra-field", '{"service":"echo","priority":9}', 422),
    submit_json("sleep-seconds-negative", '{"service":"sleep","input":{"seconds":-1}}', 422),
    submit_json("sleep-seconds-string", '{"service":"sleep","input":{"seconds":"ten"}}', 422),
    submit_json("sleep-steps-zero", '{"service":"sleep","input":{"steps":0}}', 422),
    submit_json("snapshot-rows-huge", '{"service":"snapshot","input":{"rows":1e20}}', 422),
    submit_json("dataload-without-document", '{"service":"dataload"}', 422),
    # -- content types ---------------------------------------------------------------------
    Case("text-plain", "POST", "/v1/jobs", '{"service":"echo"}', "text/plain", None, 415,
         "unsupported_media_type"),
    Case("form-encoded", "POST", "/v1/jobs", "service=echo", "application/x-www-form-urlencoded",
         None, 415, "unsupported_media_type"),
    Case("multipart", "POST", "/v1/jobs", "--b\r\n\r\n--b--", "multipart/form-data; boundary=b",
         None, 415, "unsupported_media_type"),
    Case("near-json-content-type", "POST", "/v1/jobs", '{"service":"echo"}', "application/jsonx",
         None, 415),
    Case("octet-stream", "POST", "/v1/jobs", b'{"service":"echo"}', "application/octet-stream",
         None, 415),
    Case("xml-type-with-json-body", "POST", "/v1/jobs", '{"service":"echo"}', X, None, 400,
         "malformed_body"),
    Case("plus-json-with-xml-body", "POST", "/v1/jobs", xml_job(""), "application/vnd.x+json",
         None, 400, "malformed_body"),
    # -- XML -------------------------------------------------------------------------------
    submit_xml("xml-unclosed", b"<job><service>echo</service>", 400, "malformed_body"),
    submit_xml("xml-mismatched", b"<job><service>echo</job>", 400, "malformed_body"),
    submit_xml("xml-not-xml", b"not xml at all", 400, "malformed_body"),
    submit_xml("xml-empty", b"", 400, "malformed_body"),
    submit_xml("xml-wrong-root", b"<task><service>echo</service></task>", 400, "malformed_body"),
    submit_xml("xml-unknown-encoding",
               b'<?xml version="1.0" encoding="bogus"?>' + xml_job(""), 400, "malformed_body"),
    submit_xml("xml-unknown-encoding-utf9",
               b'<?xml version="1.0" encoding="utf-9"?>' + xml_job(""), 400, "malformed_body"),
    submit_xml("xml-encoding-utf16-with-utf8-bytes",
               b'<?xml version="1.0" encoding="utf-16"?>' + xml_job(""), 400, "malformed_body"),
    submit_xml("xml-300-deep", xml_job("<input>" + "<a>" * 300 + "1" + "</a>" * 300 + "</input>"),
               400, "malformed_body"),
    submit_xml("xml-5000-deep", xml_job("<input>" + "<a>" * 5000 + "</a>" * 5000 + "</input>"),
               400, "malformed_body"),
    submit_xml("xml-40-deep", xml_job("<input>" + "<a>" * 40 + "1" + "</a>" * 40 + "</input>"),
               422, "validation_error"),
    submit_xml("xml-entity-expansion",
               b'<?xml version="1.0"?><!DOCTYPE j [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
               b"<job><service>&b;</service></job>", 400, "malformed_body"),
    submit_xml("xml-external-entity",
               b'<?xml version="1.0"?><!DOCTYPE j [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
               b"<job><service>&e;</service></job>", 400, "malformed_body"),
    submit_xml("xml-binary", b"\xff\xfe\x00<", 400, "malformed_body"),
    submit_xml("xml-invalid-utf8", b"<job><service>\xff</service></job>", 400, "malformed_body"),
    submit_xml("xml-nan-input", xml_job("<input><x>nan</x></input>"), 422, "validation_error"),
    submit_xml("xml-inf-input", xml_job("<input><x>-inf</x></input>"), 422, "validation_error"),
    submit_xml("xml-huge-number", xml_job("<input><x>" + "9" * 60 + "</x></input>"), 422,
               "validation_error"),
    submit_xml("xml-log-level-junk", xml_job("<logLevel>high</logLevel>"), 422),
    submit_xml("xml-chain-junk", xml_job("<chain><step><x><y/></x></step></chain>"), 422),
    submit_xml("xml-unknown-field", xml_job("<priority>9</priority>"), 422),
    submit_xml("xml-big-variables", b"<job><service>echo</service><variables>" + b"".join(
        f"<V{i}>{'v' * 4096}</V{i}>".encode() for i in range(100)) + b"</variables></job>", 413,
        "payload_too_large"),
    submit_xml("text-xml-garbage", b"<job", 400, "malformed_body", ctype="text/xml"),
]


def _auth_cases() -> list[Case]:
    bad = [
        ("no-header", None), ("empty", " "), ("bearer-only", "Bearer"), ("bearer-space", "Bearer "),
        ("bearer-wrong", "Bearer wrong-key"), ("bearer-huge", "Bearer " + "k" * 10_000),
        ("bearer-non-ascii", "Bearer cl\u00e9-\u2603"), ("token-scheme", f"Token {KEY_A}"),
        ("digest", 'Digest username="acme"'), ("basic-only", "Basic"),
        ("basic-not-base64", "Basic !!!"), ("basic-no-colon", "Basic "
                                            + base64.b64encode(b"acme").decode()),
        ("basic-empty-user", basic("", KEY_A)), ("basic-empty-password", basic("acme", "")),
        ("basic-not-utf8", "Basic " + base64.b64encode(b"\xff\xfe:" + KEY_A.encode()).decode()),
        ("basic-other-tenant", basic("bobco", KEY_A)),
        ("basic-non-ascii-user-valid-key", basic("\u00e4cme", KEY_A)),
        ("basic-emoji-user-valid-key", basic("\U0001f600", KEY_A)),
        ("basic-non-ascii-user-other-key", basic("b\u00f6bco", KEY_B)),
        ("basic-latin1-user", "Basic " + base64.b64encode(b"\xe4cme:" + KEY_A.encode()).decode()),
        ("basic-nul-user", basic("ac\x00me", KEY_A)),
    ]
    routes = [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", f"/v1/jobs/{UNKNOWN_ID}"),
              ("GET", "/v1/services"), ("POST", "/v1/services/echo/jobs"),
              ("DELETE", f"/v1/jobs/{UNKNOWN_ID}"), ("POST", f"/v1/jobs/{UNKNOWN_ID}/cancel"),
              ("GET", f"/v1/jobs/{UNKNOWN_ID}/result"), ("GET", f"/v1/jobs/{UNKNOWN_ID}/log"),
              ("GET", f"/v1/jobs/{UNKNOWN_ID}/deliveries"),
              ("POST", f"/v1/jobs/{UNKNOWN_ID}/deliveries")]
    cases = []
    for i, (name, header) in enumerate(bad):
        method, path = routes[i % len(routes)]
        headers = {"Authorization": "" if header is None else header}  # "": none sent
        raw = '{"service":"echo"}' if method == "POST" else None
        cases.append(Case(f"auth-{name}", method, path, raw, J, headers, 401, "unauthorized"))
    return cases


JOB_ROUTES = [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/result"),
              ("GET", "/log"), ("GET", "/deliveries"), ("POST", "/deliveries")]
BAD_IDS = [("nul", "%00"), ("short", "01ARZ3"), ("lowercase", UNKNOWN_ID.lower()),
           ("long", "A" * 5000), ("unicode", "\u00e9" * 26), ("percent-junk", "%ZZ%"),
           ("unknown", UNKNOWN_ID), ("nul-inside", "01ARZ3NDEKTSV4RR%00FQ69G5FA"),
           ("dots", ".."), ("crockford-invalid", "01ARZ3NDEKTSV4RRFFQ69G5FAU".replace("U", "I"))]
ID_CASES = [Case(f"id-{name}-{method}{suffix or '-job'}", method, f"/v1/jobs/{job_id}{suffix}",
                 None, None, None, 404)
            for name, job_id in BAD_IDS for method, suffix in JOB_ROUTES
            if not (name in ("long", "crockford-invalid", "dots") and suffix not in ("", "/log"))]

QUERY_CASES = [
    Case(f"query-{name}", "GET", f"/v1/jobs?{query}", None, None, None, 400)
    for name, query in [
        ("limit-0", "limit=0"), ("limit-101", "limit=101"), ("limit-abc", "limit=abc"),
        ("limit-negative", "limit=-5"), ("limit-float", "limit=2.5"),
        ("limit-huge", "limit=" + "9" * 5000), ("limit-empty-then-bad", "limit=&limit=x"),
        ("limit-nan", "limit=NaN"),
        ("status-bogus", "status=bogus"), ("status-unicode", "status=%E2%98%83"),
        ("status-case", "status=QUEUED"), ("cursor-junk", "cursor=%%%"),
        ("cursor-unicode", "cursor=%C3%A9%E2%98%83"), ("cursor-nul", "cursor=%00"),
        ("cursor-long", "cursor=" + "A" * 10_000),
        ("cursor-forged", "cursor=" + base64.urlsafe_b64encode(
            b"x" * 16 + b'["a","b"]').decode().rstrip("=")),
    ]
]

DOCUMENT_CASES = [
    Case(f"document-{name}", "POST", f"/v1/services/{service}/jobs{query}", raw, ctype, None,
         status)
    for name, service, query, raw, ctype, status in [
        ("unknown-service", "nope", "", b"x", "text/plain", 404),
        ("bad-run-id", "echo", "?runId=a%20b", b"x", "text/plain", 422),
        ("run-id-too-long", "echo", "?runId=" + "r" * 40, b"x", "text/plain", 422),
        ("bad-callback", "echo", "?callbackUrl=javascript:alert(1)", b"x", "text/plain", 422),
        ("bad-log-level", "echo", "?logLevel=loud", b"x", "text/plain", 422),
        ("log-level-99", "echo", "?logLevel=99", b"x", "text/plain", 422),
        ("101-variables", "echo", "?" + "&".join(f"V{i}=1" for i in range(101)), b"x",
         "text/plain", 422),
        ("long-variable", "echo", "?A=" + "a" * 5000, b"x", "text/plain", 422),
        ("empty-variable-name", "echo", "?=1", b"x", "text/plain", 422),
        ("dataload-without-document", "dataload", "", b"", "text/csv", 422),
        ("over-4mb", "echo", "", b"a" * (4 * 1024 * 1024 + 1), "application/octet-stream", 413),
        ("inline-document-and-big-variables", "echo",
         "?" + "&".join(f"V{i}={'v' * 4000}" for i in range(70)), b"a" * 60_000,
         "application/octet-stream", 413),
        ("dataload-bad-max", "dataload", "?MAX=lots", b"a,b\n1,2\n", "text/csv", 422),
    ]
]

ROUTE_CASES = [
    Case(f"route-{method}-{path}", method, path, None, None, None, status, code)
    for method, path, status, code in [
        ("GET", "/", 404, "not_found"), ("GET", "/nope", 404, "not_found"),
        ("GET", "/v2/jobs", 404, "not_found"), ("GET", "/v1", 404, "not_found"),
        ("GET", "/v1/jobs/x/y/z", 404, "not_found"), ("POST", "/v1/nope/deeper/still", 404, None),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/nope", 404, "not_found"),
        ("GET", "/v1/services/echo", 404, "not_found"), ("GET", "/v1/jobs%2Fx", 404, None),
        ("DELETE", "/admin", 404, "not_found"), ("PUT", "/v1/jobs/../../etc/passwd", 404, None),
        ("PUT", "/v1/jobs", 405, "method_not_allowed"),
        ("DELETE", "/v1/jobs", 405, "method_not_allowed"),
        ("PATCH", f"/v1/jobs/{UNKNOWN_ID}", 405, "method_not_allowed"),
        ("PUT", f"/v1/jobs/{UNKNOWN_ID}", 405, "method_not_allowed"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/cancel", 405, "method_not_allowed"),
        ("DELETE", f"/v1/jobs/{UNKNOWN_ID}/result", 405, "method_not_allowed"),
        ("POST", f"/v1/jobs/{UNKNOWN_ID}/log", 405, "method_not_allowed"),
        ("PUT", f"/v1/jobs/{UNKNOWN_ID}/deliveries", 405, "method_not_allowed"),
        ("GET", "/v1/services/echo/jobs", 405, "method_not_allowed"),
        ("POST", "/v1/services", 405, "method_not_allowed"),
        ("POST", "/v1/health", 405, "method_not_allowed"),
        ("DELETE", "/openapi.json", 405, "method_not_allowed"),
        ("POST", "/dashboard", 405, "method_not_allowed"),
    ]
]

HEADER_CASES = [
    Case("host-with-path", "POST", "/v1/jobs", '{"service":"echo"}', J,
         {"Host": "evil.example/x"}, 400, "invalid_header"),
    Case("host-javascript", "POST", "/v1/jobs", '{"service":"echo"}', J,
         {"Host": "javascript:alert(1)//"}, 400, "invalid_header"),
    Case("host-with-space", "GET", "/v1/jobs", None, None, {"Host": "a b"}, 400,
         "invalid_header"),
    Case("host-bad-port", "GET", "/v1/jobs", None, None, {"Host": "a.example:99999"}, 400,
         "invalid_header"),
    Case("prefer-junk-with-bad-body", "POST", "/v1/jobs", "{", J, {"Prefer": "wait=;;;,,"},
         400, "malformed_body"),
    Case("prefer-huge-wait-unknown-service", "POST", "/v1/jobs", '{"service":"nope"}', J,
         {"Prefer": "wait=" + "9" * 5000}, 404),
    Case("xml-accept-bad-json", "POST", "/v1/jobs", "{", J, {"Accept": X}, 400,
         "malformed_body"),
    Case("xml-accept-unknown-route", "GET", "/nope", None, None, {"Accept": X}, 404,
         "not_found"),
    Case("xml-accept-no-auth", "GET", "/v1/jobs", None, None, {"Accept": "application/xml",
                                                             "Authorization": ""}, 401),
]

WORKER = "/v1/worker/jobs/" + UNKNOWN_ID
V1_ROUTES = [  # worker routes (a tenant key is never a worker key) and result links
    *[Case(f"worker-{name}-tenant-key", "POST", path, raw, J, None, 401, "unauthorized")
      for name, path, raw in [
          ("claim", "/v1/worker/claim", '{"services":["report"]}'),
          ("heartbeat", f"{WORKER}/heartbeat", '{"leaseToken":"x"}'),
          ("complete", f"{WORKER}/complete", '{"leaseToken":"x","result":1}'),
          ("fail", f"{WORKER}/fail", '{"leaseToken":"x"}')]],
    Case("worker-claim-bad-json-no-key", "POST", "/v1/worker/claim", "{", J,
         {"Authorization": ""}, 401),
    Case("worker-claim-basic-tenant", "POST", "/v1/worker/claim", "{}", J,
         {"Authorization": basic("acme", KEY_A)}, 401),
    Case("worker-fail-bearer-garbage", "POST", f"{WORKER}/fail", "[]", J,
         {"Authorization": "Bearer jgw_\u0000"}, 401),
    Case("result-link-garbage", "GET", "/v1/results/not-a-token", None, None, None),
    Case("result-link-huge", "GET", "/v1/results/" + "A" * 5000, None, None, None),
    Case("result-link-xml", "GET", "/v1/results/%00", None, None, {"Accept": X}),
]
COMPAT_ROUTES = [  # the source APIs' routes (docs/compat.md) with input they cannot use
    Case("hop-run-no-service", "GET", "/hop/asyncRun", None, None, None),
    Case("hop-run-unknown-service", "POST", "/hop/asyncRun?service=nope", b"x", "text/plain",
         None, 404),
    Case("hop-run-no-auth", "GET", "/hop/asyncRun?service=echo", None, None,
         {"Authorization": ""}, 401),
    Case("hop-status-no-id", "GET", "/hop/asyncStatus?service=echo", None, None, None),
    Case("hop-status-bad-id", "POST", "/hop/asyncStatus?service=echo&id=%00", None, None, None),
    Case("gw-request-unknown", "GET", f"/async/v1/requests/{UNKNOWN_ID}", None, None, None, 404),
    Case("gw-request-bad-id", "GET", "/async/v1/requests/..%2F..", None, None, None),
    Case("gw-response-unknown", "GET", f"/async/v1/requests/{UNKNOWN_ID}/response", None, None,
         None, 404),
    Case("shoptet-list-bad-limit", "GET", "/api/system/jobs?limit=abc", None, None, None, 400),
    Case("shoptet-list-bad-status", "GET", "/api/system/jobs?status=done", None, None, None, 400),
    Case("shoptet-list-bad-token", "GET", "/api/system/jobs", None, None,
         {"Authorization": "", "Shoptet-Access-Token": "nope"}, 401),
    Case("shoptet-job-unknown", "GET", f"/api/system/jobs/{UNKNOWN_ID}", None, None, None, 404),
    Case("starfish-empty", "POST", "/v1/ExecuteJobAsync", b"", J, None),
    Case("starfish-bad-json", "POST", "/v1/ExecuteJobAsync", "{", "text/json", None),
    Case("starfish-bad-xml", "POST", "/v1/ExecuteJobAsync", b"<execJobAsyncRequest>", X, None),
    Case("starfish-xml-bomb", "POST", "/v1/ExecuteJobAsync",
         b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><execJobAsyncRequest>&a;'
         b"</execJobAsyncRequest>", X, None),
    Case("starfish-unknown-job", "POST", "/v1/ExecuteJobAsync", '{"jobID":"nope"}', J, None),
    Case("starfish-form-bad", "POST", "/v1/ExecuteJobAsync", "runID=%ZZ",
         "application/x-www-form-urlencoded", None),
]

CORPUS = (BODIES + _auth_cases() + ID_CASES + QUERY_CASES + DOCUMENT_CASES + ROUTE_CASES
          + HEADER_CASES + V1_ROUTES + COMPAT_ROUTES)


def check_error(resp: Any, case: Case) -> None:
    """A 4xx (the expected one when given) with docs/api.md's error body, JSON or XML."""
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.body[:300])
    if case.status is not None:
        assert resp.status_code == case.status, (resp.status_code, resp.body[:300])
    wants_xml = "xml" in ((case.headers or {}).get("Accept") or "")
    ctype = resp.headers.get("Content-Type", "")
    if wants_xml:
        assert ctype.startswith(X), resp.headers
        root = ET.fromstring(resp.body)
        assert root.tag == "error" and root.findtext("code") and root.findtext("message")
        err = {"code": root.findtext("code")}
    else:
        assert ctype.startswith(J), resp.headers
        data = json.loads(resp.body)
        assert set(data) == {"error"}, data
        err = data["error"]
        assert isinstance(err["code"], str) and err["code"]
        assert isinstance(err["message"], str) and err["message"]
        assert isinstance(err["details"], list)
    if case.code is not None:
        assert err["code"] == case.code, err
    if resp.status_code == 405:
        assert "OPTIONS" in resp.headers.get("Allow", ""), resp.headers
    if resp.status_code == 401:
        assert "WWW-Authenticate" in resp.headers


def replay(http: Any, case: Case) -> Any:
    headers = dict(case.headers or {})
    if case.ctype:
        headers.setdefault("Content-Type", case.ctype)
    key: str | None = KEY_A
    if "Authorization" in headers:
        key = None
        if headers["Authorization"] == "":
            del headers["Authorization"]
    return http.request(case.method, case.path, key=key, body=case.raw, headers=headers)


def test_the_corpus_is_large_and_covers_every_route():
    import app

    assert len(CORPUS) >= 150 and len({c.name for c in CORPUS}) == len(CORPUS)
    hit = set()
    for case in CORPUS:
        path = case.path.split("?")[0]
        for route, methods in app.app.routes.items():
            pattern = re.sub(r"\{[^}]+\}", "*", route)
            parts, want = path.strip("/").split("/"), pattern.strip("/").split("/")
            if len(parts) == len(want) and all(w in ("*", p) for w, p in zip(want, parts,
                                                                           strict=True)):
                hit.update((m, route) for m in methods if m == case.method)
    no_input = {("GET", "/v1/health"), ("GET", "/openapi.json"), ("GET", "/dashboard"),
                ("GET", "/favicon.ico")}
    served = {(m, r) for r, ms in app.app.routes.items() for m in ms} - app.FALLBACK_ROUTES
    served -= no_input  # public pages that read nothing from the request
    assert served - hit == set(), "routes the corpus never calls"


@pytest.mark.moto  # includes the worker routes (worker keys in DynamoDB)
def test_malformed_requests_answer_4xx_with_our_error_body(env, http):
    failures = []
    for case in CORPUS:
        try:
            check_error(replay(http, case), case)
        except (AssertionError, ET.ParseError, ValueError, KeyError) as exc:
            failures.append(f"{case.name}: {exc!s:.300}")
    assert not failures, f"{len(failures)} of {len(CORPUS)} cases:\n" + "\n".join(failures)
    assert body(http.get("/v1/jobs"))["jobs"] == []  # none of them created a job


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-5", "wait=1e9", "respond-async;;;",
                                    "wait", "=,=,=", "wait=\u00e9", "respond-async, wait=x"])
def test_an_unusable_prefer_preference_is_ignored(env, http, prefer):
    resp = http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": 0}},
                     headers={"Prefer": prefer})
    assert resp.status_code == 202, resp.body


# -- the stored item: bounded at submit, with room for the lifecycle ------------------------

def _sized_request(target: int, **extra: Any) -> dict[str, Any]:
    """An echo submit whose job item is `target` bytes (as limits.item_size counts)."""
    from chalicelib.jobs import Job
    from chalicelib.limits import item_size
    from chalicelib.store import job_to_item

    def size(n: int) -> int:
        job = Job(tenant="acme", job_id=UNKNOWN_ID, service="echo", status="queued",
                  created_at=1.7e9, expires_at=1.8e9, input={"x": "a" * n},
                  variables=extra.get("variables", {}), callback_url=extra.get("callbackUrl"),
                  log_level=extra.get("logLevel", 1), request_hash="f" * 64,
                  base_url="https://jobs.example.com")
        return item_size(job_to_item(job))

    n = target - size(0)
    assert size(n) == target
    return {"service": "echo", "input": {"x": "a" * n}, **extra}


def test_variables_count_toward_the_item_bound_and_the_bound_leaves_the_reserve():
    from chalicelib import limits

    assert limits.MAX_SUBMITTED_ITEM + limits.RESERVED == limits.ITEM_LIMIT
    assert limits.RESERVED >= 64 * 1024


def test_a_job_over_the_bound_is_413_and_one_at_it_is_accepted(env, http):
    from chalicelib.limits import MAX_SUBMITTED_ITEM

    over = http.post("/v1/jobs", _sized_request(MAX_SUBMITTED_ITEM + 1))
    assert over.status_code == 413 and body(over)["error"]["code"] == "payload_too_large"
    near_400kb = http.post("/v1/jobs", _sized_request(395 * 1024))  # accepted before the fix
    assert near_400kb.status_code == 413
    at = http.post("/v1/jobs", _sized_request(MAX_SUBMITTED_ITEM - 200))
    assert at.status_code == 202, at.body


@pytest.mark.moto  # measures the item DynamoDB stores
def test_a_job_at_the_bound_can_still_run_fail_its_webhooks_and_be_canceled(env, http):
    """What the lifecycle writes into the item fits in the reserve: a job accepted at the
    bound runs to its end with a full inline log and a webhook whose every attempt fails
    (recorded with long errors), is redelivered, and another is canceled. Before the fix
    such jobs were accepted and then answered 503 forever."""
    from chalicelib import limits
    from chalicelib.store import job_pk

    env.settings(callback_max_retries=5)
    hook = "http://127.0.0.1:9/hook"  # nothing listens: every attempt fails
    size = limits.MAX_SUBMITTED_ITEM - 200
    ran = http.post("/v1/jobs", _sized_request(size, callbackUrl=hook, logLevel=3))
    assert ran.status_code == 202, ran.body
    job_id = body(ran)["jobId"]
    env.run_queue()
    job = env.rt.store.get("acme", job_id, 0)
    assert job is not None and job.status == "succeeded", job and job.status
    error = "ConnectionRefusedError: [Errno 111] Connection refused " + "\u00e9" * 150
    for round_ in range(2):  # the first schedule, then a redelivery's
        for _ in range(1 + 5):
            delivery = {"at": "2030-01-01T00:00:00.000Z", "statusCode": None, "error": error,
                        "durationMs": 10_000}
            assert env.rt.store.record_delivery("acme", job_id, delivery, delivered=False,
                                                at=1.9e9) is not None
        env.rt.store.set_callback_state("acme", job_id, "failed", "pending")
        if round_ == 0:
            resp = http.post(f"/v1/jobs/{job_id}/deliveries")
            assert resp.status_code == 202, resp.body
    item = env.rt.clients.dynamodb.get_item(
        TableName=env.rt.settings.table_name,
        Key={"pk": {"S": job_pk("acme", job_id)}, "sk": {"S": "JOB"}})["Item"]
    grown = limits.item_size(item) - size
    assert 0 < grown <= limits.RESERVED, grown
    assert limits.item_size(item) <= limits.ITEM_LIMIT
    assert http.get(f"/v1/jobs/{job_id}").status_code == 200

    queued = http.post("/v1/jobs", _sized_request(size, callbackUrl=hook, logLevel=3))
    assert queued.status_code == 202, queued.body
    canceled = http.post(f"/v1/jobs/{body(queued)['jobId']}/cancel")
    assert canceled.status_code == 200, canceled.body
    assert body(canceled)["status"] == "canceled"


# -- links: from who we are, never from what a client claims ---------------------------------

def test_forwarding_headers_are_ignored_without_a_trusted_proxy(env, http):
    resp = http.post("/v1/jobs", {"service": "echo"}, headers={
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "javascript"})
    assert resp.status_code == 202
    assert resp.headers["Location"].startswith("https://jobs.example.com/v1/jobs/")
    assert "evil" not in resp.body.decode() and "javascript" not in resp.body.decode()


def test_a_trusted_proxy_sets_the_links_and_its_headers_are_validated(env, http, monkeypatch):
    monkeypatch.setenv("JOBGATE_TRUSTED_PROXY", "true")
    ok = http.post("/v1/jobs", {"service": "echo"}, headers={
        "X-Forwarded-Host": "client-sent.example, public.example:8443",
        "X-Forwarded-Proto": "http, https"})
    assert ok.status_code == 202
    assert ok.headers["Location"].startswith("https://public.example:8443/v1/jobs/")
    for headers in ({"X-Forwarded-Host": "evil.example/x"},
                    {"X-Forwarded-Host": "a.example", "X-Forwarded-Proto": "javascript"},
                    {"X-Forwarded-Host": "javascript://evil.example"},
                    {"X-Forwarded-Host": "a.example", "X-Forwarded-Proto": "ftp"}):
        resp = http.post("/v1/jobs", {"service": "echo"}, headers=headers)
        assert resp.status_code == 400, (headers, resp.body)
        assert body(resp)["error"]["code"] == "invalid_header"


def test_on_aws_links_use_api_gateways_own_domain_and_stage(env, http):
    import app as app_module

    headers = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
               "X-Forwarded-Proto": "javascript", "Authorization": f"Bearer {KEY_A}",
               "Content-Type": J}
    event = {
        "resource": "/v1/jobs", "path": "/v1/jobs", "httpMethod": "POST", "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": "/v1/jobs", "httpMethod": "POST", "stage": "api",
                           "path": "/api/v1/jobs",
                           "domainName": "abc.execute-api.us-east-1.amazonaws.com"},
        "body": json.dumps({"service": "echo"}), "isBase64Encoded": False,
    }
    out = app_module.app(event, None)
    assert out["statusCode"] == 202, out
    job_id = json.loads(out["body"])["jobId"]
    base = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    assert out["headers"]["Location"] == f"{base}/v1/jobs/{job_id}"
    assert json.loads(out["body"])["log"] == f"{base}/v1/jobs/{job_id}/log"


def test_the_webhook_event_links_ignore_forwarding_headers(env, http):
    resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": "http://127.0.0.1:9/h"},
                     headers={"X-Forwarded-Host": "evil.example",
                              "X-Forwarded-Proto": "javascript"})
    assert resp.status_code == 202
    env.run_queue()
    job = env.rt.store.get("acme", body(resp)["jobId"], 0)
    assert job is not None and job.callback_event
    assert "evil.example" not in job.callback_event and "javascript" not in job.callback_event


# -- unknown routes and methods ----------------------------------------------------------------

def test_wrong_methods_list_the_allowed_ones_and_options_answers_them(env, http):
    resp = http.request("PUT", "/v1/jobs")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST, OPTIONS"
    options = http.request("OPTIONS", f"/v1/jobs/{UNKNOWN_ID}")
    assert options.status_code == 204 and options.headers["Allow"] == "GET, DELETE, OPTIONS"


def test_api_gateway_routes_an_unknown_path_to_the_catch_all():
    """On AWS the greedy resource receives every unknown path (resourcePath /{proxy+})."""
    import app as app_module

    event = {"resource": "/{proxy+}", "path": "/v9/anything/at/all", "httpMethod": "DELETE",
             "headers": {"Host": "abc.execute-api.us-east-1.amazonaws.com"},
             "multiValueHeaders": {}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": "v9/anything/at/all"}, "stageVariables": None,
             "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "DELETE",
                                "stage": "api", "path": "/api/v9/anything/at/all"},
             "body": None, "isBase64Encoded": False}
    out = app_module.app(event, None)
    assert out["statusCode"] == 404
    assert json.loads(out["body"])["error"]["code"] == "not_found"


def test_every_known_path_answers_every_method():
    """So API Gateway never answers a method by itself (403 Missing Authentication Token)."""
    import app as app_module

    for path, methods in app_module.app.routes.items():
        assert set(app_module.METHODS) <= set(methods), path
    assert "/{proxy+}" in app_module.app.routes and "/" in app_module.app.routes


# -- XML lists ----------------------------------------------------------------------------------

def test_xml_lists_nest_once(env, http):
    for _ in range(2):
        assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202
    root = ET.fromstring(http.get("/v1/jobs", headers={"Accept": X}).body)
    assert root.tag == "jobs"
    assert [c.tag for c in root] == ["job", "job", "nextCursor"]
    services = ET.fromstring(http.get("/v1/services", headers={"Accept": X}).body)
    assert services.tag == "services" and {c.tag for c in services} == {"service"}
    job_id = body(http.get("/v1/jobs"))["jobs"][0]["jobId"]
    deliveries = ET.fromstring(http.get(f"/v1/jobs/{job_id}/deliveries",
                                        headers={"Accept": X}).body)
    assert deliveries.tag == "deliveries" and list(deliveries) == []
