"""Callback URL rules (issue 11, items 3, 4 and 8): what is refused at submit and again at
delivery. The resolver is stubbed, so host names can be made to resolve anywhere."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from chalicelib import urls, webhooks
from chalicelib.urls import check_callback_url
from localrunner.receiver import Receiver
from tests.conftest import body

# name -> addresses the stubbed resolver answers
ZONE = {
    "public.example": ["93.184.216.34"],
    "public6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "xn--bcher-kva.example": ["93.184.216.34"],
    "loopback.example": ["127.0.0.1"],
    "private.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "loopback6.example": ["::1"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "ula.example": ["fd00::5"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "nat64.example": ["64:ff9b::a00:1"],
}


def fake_getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    name = host.rstrip(".").lower()
    if name not in ZONE:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, port)) for a in ZONE[name]]


@pytest.fixture(autouse=True)
def stub_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls, "getaddrinfo", fake_getaddrinfo)


# Every form a red team tried, and their neighbours: each must be refused on a deployment.
REFUSED = [
    # IPv4 in every spelling WHATWG or inet_aton accepts
    "https://127.0.0.1/", "https://127.0.0.1./", "https://127.1/", "https://127.0.1/",
    "https://2130706433/", "https://0x7f000001/", "https://0x7F.0.0.1/", "https://0177.0.0.1/",
    "https://017700000001/", "https://0x7f.1/", "https://127.000.000.001/", "https://0/",
    "https://0.0.0.0/", "https://3232235777/", "https://0xa9fea9fe/",
    # IPv4 special-purpose blocks
    "https://10.0.0.1/", "https://172.16.5.4/", "https://172.31.255.255/", "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/", "https://192.0.0.8/",
    "https://192.0.2.1/", "https://192.88.99.1/", "https://198.18.0.1/", "https://198.51.100.7/",
    "https://203.0.113.9/", "https://224.0.0.1/", "https://239.255.255.250/",
    "https://240.0.0.1/", "https://255.255.255.255/",
    # IPv6, and IPv4 hidden in IPv6
    "https://[::1]/", "https://[::]/", "https://[0:0:0:0:0:0:0:1]/", "https://[::127.0.0.1]/",
    "https://[::7f00:1]/", "https://[::a9fe:a9fe]/", "https://[::8.8.8.8]/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::ffff:a9fe:a9fe]/",
    "https://[::ffff:8.8.8.8]/", "https://[::ffff:0:7f00:1]/", "https://[::ffff:0:808:808]/",
    "https://[64:ff9b::7f00:1]/", "https://[64:ff9b::808:808]/", "https://[64:ff9b:1::a00:1]/",
    "https://[2002:7f00:1::1]/", "https://[2002:808:808::1]/",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "https://[2001:db8::1]/",
    "https://[3fff::1]/", "https://[100::1]/", "https://[fc00::1]/", "https://[fd12:3456::1]/",
    "https://[fd00:ec2::254]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
    "https://[fec0::1]/", "https://[feff::1]/", "https://[ff02::1]/", "https://[ff0e::1]/",
    "https://[::ffff:127.0.0.1]:443/", "https://[v1.fe]/", "https://[::1/",
    # userinfo and parser-differential tricks
    "https://8.8.8.8@127.0.0.1/", "https://@127.0.0.1/", "https://user:pw@public.example/",
    "https://public.example@127.0.0.1/", "https://127.0.0.1#@public.example/",
    "https://public.example\\@127.0.0.1/", "https://127.0.0.1\\@public.example/",
    "https://%31%32%37.0.0.1/", "https://127.0.0.1%2f@public.example/",
    # names for this host, and names that resolve to private addresses
    "https://localhost/", "https://LOCALHOST./", "https://foo.localhost/",
    "https://localhost.localdomain/", "https://loopback.example/", "https://private.example/",
    "https://metadata.example/", "https://loopback6.example/", "https://mapped.example/",
    "https://ula.example/", "https://mixed.example/", "https://nat64.example/",
    "https://nowhere.example/",
    # not plain ASCII URLs (issue 11 item 3: they broke delivery)
    "https://1.2.3.4 x/", "https://public.example/hé", "https://publ ic.example/",
    "https://public.example/a b", "https://public.example/\x00", "https://public.example/\t",
    "https://public.example/a\r\nX-Injected: 1", "https://pübl.example/", "https://public.example/%zz",
    "https://public.example:0/", "https://public.example:99999/", "https://public.example:x/",
    "https://exa..mple.com/", "https://-bad.example/", "https://bad_.example/x\x7f",
    # schemes
    "http://8.8.8.8/", "ftp://8.8.8.8/", "javascript://public.example/%0aalert(1)", "//public.example/",
    "not a url", "https:///nohost", "",
]

ALLOWED = [
    "https://8.8.8.8/hooks", "https://public.example/hooks?corr=abc", "https://public.example./h",
    "https://PUBLIC.example:8443/h", "https://public6.example/h", "https://[2606:4700:4700::1111]/h",
    "https://xn--bcher-kva.example/h", "https://public.example/a%20b?x=%C3%A9#frag",
]


def test_the_corpus_is_large() -> None:
    assert len(REFUSED) >= 40


@pytest.mark.parametrize("url", REFUSED)
def test_refused_at_submit(url: str) -> None:
    assert check_callback_url(url, allow_private=False) is not None


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    assert check_callback_url(url, allow_private=False) is None


# Refused for their spelling alone, whatever the address rules.
SYNTAX = [
    "https://127.1/", "https://2130706433/", "https://0x7f000001/", "https://0177.0.0.1/",
    "https://0x7f.1/", "https://127.000.000.001/", "https://0/", "https://[fe80::1%25eth0]/",
    "https://[v1.fe]/", "https://[::1/", "https://8.8.8.8@127.0.0.1/", "https://@127.0.0.1/",
    "https://public.example\\@127.0.0.1/", "https://%31%32%37.0.0.1/",
    "https://1.2.3.4 x/", "https://public.example/hé", "https://publ ic.example/",
    "https://public.example/\x00", "https://public.example/a\r\nX-Injected: 1",
    "https://pübl.example/", "https://public.example/%zz", "https://public.example:0/",
    "https://public.example:99999/", "https://exa..mple.com/", "https://-bad.example/",
    "ftp://8.8.8.8/", "not a url", "https:///nohost", "",
]


def test_syntax_cases_are_in_the_corpus() -> None:
    assert set(SYNTAX) <= set(REFUSED)


@pytest.mark.parametrize("url", SYNTAX)
def test_malformed_urls_are_refused_even_where_private_targets_are_allowed(url: str) -> None:
    assert check_callback_url(url.replace("https://", "http://"), allow_private=True) is not None


@pytest.fixture(scope="module")
def listener() -> Any:
    with Receiver([200]) as rx:
        yield rx


@pytest.mark.parametrize("url", [u for u in REFUSED if u.startswith("https://")])
def test_refused_again_at_delivery_without_a_connection(url: str, listener: Receiver) -> None:
    """Whatever got stored before these rules (or resolves differently later) is refused by
    the deliverer too, as a failed attempt: it never raises and never connects."""
    before = len(listener.requests)
    attempt = webhooks.post(url, {}, "{}", allow_private=False, timeout=2)
    assert not attempt.ok and attempt.status_code is None and attempt.error
    assert len(listener.requests) == before


def test_dns_rebinding_after_submit_is_caught_at_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_callback_url("https://rebind.example/h", allow_private=False) is not None
    ZONE["rebind.example"] = ["93.184.216.34"]
    try:
        assert check_callback_url("https://rebind.example/h", allow_private=False) is None
        with Receiver([200]) as rx:
            ZONE["rebind.example"] = ["127.0.0.1"]  # the name now points at the receiver
            attempt = webhooks.post(f"https://rebind.example:{rx.port}/h", {}, "{}",
                                    allow_private=False)
        assert not attempt.ok and "private" in attempt.error and rx.requests == []
    finally:
        ZONE.pop("rebind.example")


def test_submit_answers_422_naming_the_field(env: Any, http: Any) -> None:
    env.settings(allow_private_callbacks=False)
    for url in ("https://[::127.0.0.1]/", "https://1.2.3.4 x/", "https://public.example/hé",
                "https://[fec0::1]/", "https://private.example/"):
        resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": url})
        assert resp.status_code == 422, (url, resp.body)
        error = body(resp)["error"]
        assert error["code"] == "validation_error" and error["details"][0]["loc"] == ["callbackUrl"]


def test_submit_refuses_malformed_urls_locally_too(env: Any, http: Any) -> None:
    """The local default allows private targets, not URLs that cannot be sent."""
    for url in ("http://127.0.0.1:9/hé", "http://1.2.3.4 x/", "http://127.0.0.1:9/a b",
                "http://127.1:9/", "http://a\\@127.0.0.1:9/"):
        resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": url})
        assert resp.status_code == 422, (url, resp.body)
        assert body(resp)["error"]["details"][0]["loc"] == ["callbackUrl"]


# -- the deployment's own endpoints (item 8) ------------------------------------------------------

OWN = (("127.0.0.1", 4566), ("127.0.0.1", 8000))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:4566/moto-api/reset", "http://localhost:4566/moto-api/reset",
    "http://LOCALHOST.:4566/", "http://127.0.0.2:4566/", "http://0.0.0.0:4566/",
    "http://[::1]:4566/", "http://[::]:4566/", "http://[::ffff:127.0.0.1]:4566/",
    "http://[::127.0.0.1]:4566/", "http://loopback.example:4566/", "http://127.0.0.1:8000/v1/jobs",
    "http://loopback6.example:8000/",
])
def test_own_endpoints_are_refused_even_with_private_targets_allowed(url: str) -> None:
    assert check_callback_url(url, allow_private=True, forbidden_targets=OWN) is not None


def test_other_local_ports_stay_allowed() -> None:
    assert check_callback_url("http://127.0.0.1:9000/h", allow_private=True,
                              forbidden_targets=OWN) is None
    assert check_callback_url("http://localhost:9000/h", allow_private=True,
                              forbidden_targets=OWN) is None


def test_own_endpoints_are_refused_at_delivery() -> None:
    with Receiver([200]) as rx:
        own = (("localhost", rx.port),)
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"):
            attempt = webhooks.post(f"http://{host}:{rx.port}/moto-api/reset", {}, "{}",
                                    allow_private=True, forbidden_targets=own)
            assert not attempt.ok and "own endpoints" in attempt.error, (host, attempt)
        assert rx.requests == []
        ok = webhooks.post(rx.url, {}, "{}", allow_private=True, forbidden_targets=(("x", 1),))
        assert ok.ok and len(rx.requests) == 1


def test_settings_read_the_forbidden_targets() -> None:
    from chalicelib.settings import Settings

    s = Settings.from_env({"JOBGATE_FORBIDDEN_CALLBACK_TARGETS": "127.0.0.1:4566, [::1]:8000,bad"})
    assert s.forbidden_callback_targets == (("127.0.0.1", 4566), ("::1", 8000))


def test_the_local_runner_forbids_its_own_api_and_aws_endpoint() -> None:
    from localrunner.runner import own_endpoints

    spec = own_endpoints("", 8000, "http://127.0.0.1:41234")
    assert urls.parse_host_ports(spec) == (("127.0.0.1", 8000), ("127.0.0.1", 41234))
    spec = own_endpoints("10.0.0.9:80", 8001, "http://localhost:4566")
    assert urls.parse_host_ports(spec) == (("10.0.0.9", 80), ("127.0.0.1", 8001),
                                           ("localhost", 4566))
