"""Issue 11, items 1 and 7: a tenant's listing, job and run-ID keys can never reach another
tenant's, whatever the names and filters; tenant names are slugs wherever a tenant is
created; listing cursors are signed with a secret key and good for one tenant's one query."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from chalicelib import cursor_secret, store, tenants
from chalicelib.jobs import QUEUED, Job
from chalicelib.tenants import Tenant, check_tenant_name
from tests.conftest import KEY_A, KEY_B, body
from tests.test_routes import error_of, submit

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

KEY_EU = "key-acme-eu-0123456789"
SECRET_EU = "whsec_ZXVyb3BlYW5zZWNyZXRmb3JhY21lZXUx"


def bypass_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an old deployment, a hand-written item or a future bug could leave behind."""
    monkeypatch.setattr(tenants, "check_tenant_name", lambda name: name)


def add_tenant(env: Any, name: str, key: str, secret: str = SECRET_EU) -> None:
    env.rt.tenants.put_tenant(Tenant(name=name, webhook_secrets=[secret]))
    env.rt.tenants.add_key(name, key)


def a_job(tenant: str, job_id: str, service: str = "echo", run_id: str | None = None) -> Job:
    now = time.time()
    return Job(tenant=tenant, job_id=job_id, service=service, status=QUEUED, created_at=now,
               expires_at=now + 3600, run_id=run_id, request_hash="h" if run_id else None)


def ids(page: store.Page) -> list[str]:
    return [j.job_id for j in page.jobs]


# -- item 1: the attack, and keys that cannot cross by construction --------------------------

def test_a_tenant_cannot_list_another_whose_name_extends_its_own(env, http, monkeypatch):
    """The red-team case: tenants `acme` and `acme#eu` (created at the store level,
    bypassing the name check); `acme` listing `?service=eu%23echo` saw `acme#eu`'s jobs."""
    bypass_validation(monkeypatch)
    add_tenant(env, "acme#eu", KEY_EU)
    theirs = submit(http, key=KEY_EU)["jobId"]
    ours = submit(http, key=KEY_A)["jobId"]

    for query in ("service=eu%23echo", "status=eu%23queued", "service=eu%23echo&status=queued",
                  "status=eu%23queued&service=echo"):
        resp = http.get(f"/v1/jobs?{query}", key=KEY_A)
        error_of(resp, 400, "invalid_parameter")
        assert theirs not in resp.body.decode()

    # Below the HTTP check too: the store's keys themselves keep the tenants apart.
    now = time.time()
    for filters in ({"service": "eu#echo"}, {"status": "eu#queued"},
                    {"status": "eu#queued", "service": "echo"}, {"service": "eu#echo#x"}):
        page = env.rt.store.list("acme", now, limit=100, after=None,
                                 **{"status": None, "service": None, **filters})
        assert ids(page) == [], filters
    assert ids(env.rt.store.list("acme", now, status=None, service="echo", limit=100,
                                 after=None)) == [ours]
    assert ids(env.rt.store.list("acme", now, status=None, service=None, limit=100,
                                 after=None)) == [ours]
    assert env.rt.store.count_active("acme", 100, now) == 1

    # Each tenant still sees its own jobs, under every index.
    for query in ("", "?service=echo", "?status=queued"):
        assert [j["jobId"] for j in body(http.get(f"/v1/jobs{query}", key=KEY_EU))["jobs"]] == [
            theirs], query
        assert [j["jobId"] for j in body(http.get(f"/v1/jobs{query}", key=KEY_A))["jobs"]] == [
            ours], query


def test_job_and_run_id_keys_cannot_reach_into_a_longer_tenant_name(env, monkeypatch):
    """`T#acme#J#X#J#Y` was both (acme, `X#J#Y`) and (`acme#J#X`, Y); same for run IDs."""
    bypass_validation(monkeypatch)
    now = time.time()
    env.rt.store.create(a_job("acme#J#01X", "01Y", run_id="run-1"))
    env.rt.store.create(a_job("acme#R#r", "01Z", run_id="x"))
    assert env.rt.store.get("acme", "01X#J#01Y", now) is None
    assert env.rt.store.run_id_owner("acme", "r#R#x") is None
    assert env.rt.store.get("acme#J#01X", "01Y", now) is not None  # the owner still reads it
    assert env.rt.store.run_id_owner("acme#R#r", "x") == ("01Z", "h")


@pytest.mark.parametrize("a,b", [
    (("acme", "eu#echo"), ("acme#eu", "echo")),
    (("acme", "%23x"), ("acme%23", "x")),
    (("a#b", "c"), ("a", "b#c")),
    (("acme", ""), ("acme#", "")),
])
def test_composite_keys_are_injective(a: tuple[str, str], b: tuple[str, str]) -> None:
    for key in (store.job_pk, store.run_pk):
        assert key(*a) != key(*b), key
    for key in (store.status_index_key, store.service_index_key):
        assert key(*a, 3) != key(*b, 3), key
    assert store.tenant_index_key(a[0], 3) != store.tenant_index_key(b[0], 3)
    assert tenants.tenant_pk(a[0]) != tenants.tenant_pk(b[0])


def test_keys_of_valid_names_are_what_they_were_before():
    """Slugs, service names, statuses, job IDs and run IDs encode to themselves: rows written
    before the encoding stay readable without a migration."""
    assert store.job_pk("acme-1_x", "01HZX") == "T#acme-1_x#J#01HZX"
    assert store.run_pk("acme", "batch-7:part.2_x") == "T#acme#R#batch-7:part.2_x"
    assert store.status_index_key("acme", "queued", 7) == "acme#queued#07"
    assert store.service_index_key("acme", "dataload", 15) == "acme#dataload#15"
    assert store.tenant_index_key("acme", 0) == "acme#00"
    assert tenants.tenant_pk("acme") == "TENANT#acme"


def test_unknown_filters_answer_400(env, http):
    submit(http)
    for query, what in (("service=nosuch", "service"), ("service=echo%23queued", "service"),
                        ("service=%00", "service"), ("service=" + "x" * 5000, "service"),
                        ("status=done", "status"), ("status=queued%23x", "status"),
                        ("status=queued&service=nosuch", "service")):
        err = error_of(http.get(f"/v1/jobs?{query}"), 400, "invalid_parameter")
        assert what in err["message"], query
    for query in ("service=echo", "status=queued", "service=sleep&status=failed", "service="):
        assert http.get(f"/v1/jobs?{query}").status_code == 200, query


# -- item 1: tenant names are slugs wherever a tenant is created ------------------------------

GOOD_NAMES = ["acme", "a", "ACME-eu_2", "x" * 64, "0", "-", "_"]
BAD_NAMES = ["", "acme#eu", "acme:eu", "acme eu", "acme/eu", "acme.eu", "acmé", "x" * 65,
             "acme\n", "acme%23eu", "a\x00", "ａｃｍｅ", "acme\u200b"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_slugs_are_tenant_names(name: str) -> None:
    assert check_tenant_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_anything_else_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="tenant names are"):
        check_tenant_name(name)


def _tenant_items(env: Any) -> list[dict[str, Any]]:
    items = env.rt.clients.dynamodb.scan(TableName=env.rt.settings.table_name)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("TENANT#")]


@pytest.mark.moto  # reads the tenant items from DynamoDB
def test_the_tenant_store_refuses_other_names(env):
    before = _tenant_items(env)
    for name in BAD_NAMES:
        for create in (env.rt.tenants.put_tenant, env.rt.tenants.create_tenant):
            with pytest.raises(ValueError):
                create(Tenant(name=name, webhook_secrets=[SECRET_EU]))
    assert _tenant_items(env) == before
    env.rt.tenants.create_tenant(Tenant(name="x" * 64, webhook_secrets=[SECRET_EU]))
    assert env.rt.tenants.get_tenant("x" * 64) is not None


@pytest.mark.moto  # the admin command builds its own DynamoDB stores
def test_the_admin_refuses_other_names(env, capsys):
    from chalicelib.admin import AdminError, TenantAdmin, main

    admin = TenantAdmin(env.rt.tenants, actor="ops@example.com")
    for name in BAD_NAMES:
        with pytest.raises(AdminError, match="tenant names are"):
            admin.create_tenant(name)
    table = env.rt.settings.table_name
    try:
        assert main(["--table", table, "--actor", "ci", "create-tenant", "acme#eu"]) == 1
        assert "tenant names are" in capsys.readouterr().err
        assert main(["--table", table, "--actor", "ci", "--json", "create-tenant", "acme-eu"]) == 0
    finally:
        from chalicelib import telemetry

        telemetry.setup(stream="stdout")
    assert env.rt.tenants.get_tenant("acme#eu") is None
    assert env.rt.tenants.get_tenant("acme-eu") is not None


@pytest.mark.parametrize("name", ["acme#eu", "acme eu", "acmé", "x" * 65, "acme.eu"])
def test_the_local_runner_refuses_other_names(name: str) -> None:
    from localrunner.runner import parse_tenants

    with pytest.raises(SystemExit, match="tenant names are"):
        parse_tenants(f"ok:key-ok-0123456789:{SECRET_EU},{name}:key-x-0123456789:{SECRET_EU}")
    assert parse_tenants(f"acme-eu:key-x-0123456789:{SECRET_EU}") == [
        ("acme-eu", "key-x-0123456789", SECRET_EU)]


@pytest.mark.moto  # provisions on moto itself
def test_local_runtime_refuses_other_names():
    from moto import mock_aws

    from chalicelib import runtime
    from chalicelib.connections import create_clients
    from localrunner.provision import local_runtime

    with mock_aws():
        try:
            with pytest.raises(ValueError, match="tenant names are"):
                local_runtime(create_clients("us-east-1"), "jobgate-names", "us-east-1",
                              [("acme#eu", KEY_EU, SECRET_EU)], {})
        finally:
            runtime.set_current(None)


# -- item 7: cursors ------------------------------------------------------------------------

def _cursor(http: Any, query: str = "", key: str = KEY_A) -> str:
    cursor = body(http.get(f"/v1/jobs?limit=1{query}", key=key))["nextCursor"]
    assert cursor
    return cursor


def test_a_cursor_is_good_for_its_own_tenant_only(env, http, monkeypatch):
    for key in (KEY_A, KEY_A, KEY_B, KEY_B):
        submit(http, key=key)
    mine, theirs = _cursor(http), _cursor(http, key=KEY_B)
    assert http.get(f"/v1/jobs?limit=1&cursor={mine}").status_code == 200
    error_of(http.get(f"/v1/jobs?limit=1&cursor={mine}", key=KEY_B), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&cursor={theirs}", key=KEY_A), 400, "invalid_cursor")
    # even between names that differ only by a separator
    bypass_validation(monkeypatch)
    add_tenant(env, "acme#", KEY_EU)
    error_of(http.get(f"/v1/jobs?limit=1&cursor={mine}", key=KEY_EU), 400, "invalid_cursor")


def test_a_cursor_is_good_for_its_own_filters_only(env, http):
    for service in ("echo", "echo", "sleep"):
        submit(http, service, {"seconds": 0} if service == "sleep" else None)
    by_service, by_status = _cursor(http, "&service=echo"), _cursor(http, "&status=queued")
    for query, cursor in (("", by_service), ("&service=sleep", by_service),
                          ("&status=queued&service=echo", by_service), ("", by_status),
                          ("&status=canceled", by_status), ("&service=echo", by_status)):
        error_of(http.get(f"/v1/jobs?limit=1{query}&cursor={cursor}"), 400, "invalid_cursor")


def test_a_tampered_or_forged_cursor_is_400(env, http):
    """Including one signed the old way, with a key made of the public table and bucket
    names: the key is a secret now."""
    for _ in range(3):
        submit(http)
    cursor = _cursor(http)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    sig, payload = raw[:16], raw[16:]
    job_id = json.loads(payload)[0]
    other = json.dumps([job_id[:-1] + ("0" if job_id[-1] != "0" else "1"), None, None],
                       separators=(",", ":")).encode()

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    settings = env.rt.settings
    public = hashlib.sha256(json.dumps([settings.table_name, settings.bucket_name]).encode())
    old_key = public.hexdigest().encode()
    forged = [
        enc(sig + other),  # another position under the same signature
        enc(bytes([sig[0] ^ 1]) + sig[1:] + payload),
        enc(hmac.new(old_key, payload, hashlib.sha256).digest()[:16] + payload),
        enc(hmac.new(old_key, json.dumps(["jobgate-cursor/1", "acme"]).encode() + b"\n"
                     + payload, hashlib.sha256).digest()[:16] + payload),
        cursor[:-2], cursor + "AA", enc(payload), "",
    ]
    for bad in forged:
        if bad:
            error_of(http.get(f"/v1/jobs?limit=1&cursor={bad}"), 400, "invalid_cursor")


def test_cursor_secret_is_required_outside_the_local_runner(env):
    from chalicelib import runtime

    with pytest.raises(cursor_secret.MissingCursorSecret, match="JOBGATE_CURSOR_SECRET_ID"):
        runtime.build(env.rt.settings, env.rt.clients, {})
    with pytest.raises(cursor_secret.MissingCursorSecret, match="at least 32"):
        runtime.build(env.rt.settings, env.rt.clients, {"JOBGATE_CURSOR_SECRET": "short"})
    key = cursor_secret.resolve({"JOBGATE_CURSOR_SECRET": "k" * 32}, "us-east-1")
    assert key() == b"k" * 32


@pytest.mark.moto  # reads the secret from moto's Secrets Manager
def test_the_stage_secret_is_read_once_from_secrets_manager(env, http):
    """On AWS: JOBGATE_CURSOR_SECRET_ID names the stack's secret. One read per container;
    a failed read is a 503 for that listing and is tried again on the next."""
    import boto3

    sm = boto3.client("secretsmanager", region_name="us-east-1")
    calls: list[str] = []
    sm.meta.events.register("before-call.secretsmanager.GetSecretValue",
                            lambda **_: calls.append("get"))
    source = cursor_secret.resolve({"JOBGATE_CURSOR_SECRET_ID": "jobgate-test-cursor-secret"},
                                   "us-east-1")
    assert isinstance(source, cursor_secret.ManagedSecret)
    source.client = sm
    env.rt.api.cursors.secret = source
    for _ in range(3):
        submit(http)
    error_of(http.get("/v1/jobs?limit=1"), 503, "unavailable")  # no such secret yet
    sm.create_secret(Name="jobgate-test-cursor-secret", SecretString="s" * 48)
    cursor = _cursor(http)
    page = body(http.get(f"/v1/jobs?limit=1&cursor={cursor}"))
    assert len(page["jobs"]) == 1 and page["nextCursor"]
    assert calls == ["get", "get"]
    assert source() == b"s" * 48

    short = cursor_secret.ManagedSecret("jobgate-test-short", "us-east-1", sm)
    sm.create_secret(Name="jobgate-test-short", SecretString="tiny")
    with pytest.raises(cursor_secret.MissingCursorSecret):
        short()
