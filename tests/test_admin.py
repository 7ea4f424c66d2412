"""Operator commands: tenants, keys, revocation, secret rotation, audit."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from chalicelib.admin import AdminError, TenantAdmin, main
from chalicelib.tenants import TenantStore
from localrunner.receiver import Receiver


@pytest.fixture
def admin(env):
    return TenantAdmin(env.rt.tenants, actor="ops@example.com")


def test_create_tenant_gives_a_working_key_and_secret(env, http, admin):
    key, secret = admin.create_tenant("newco")
    assert key.startswith("jg_") and secret.startswith("whsec_")
    assert http.get("/v1/jobs", key=key).status_code == 200
    with pytest.raises(AdminError):
        admin.create_tenant("newco")
    # the key is stored hashed only
    items = env.rt.clients.dynamodb.scan(TableName=env.rt.settings.table_name)["Items"]
    assert key not in json.dumps(items)


def test_keys_are_listed_and_revocation_is_immediate(env, http, admin):
    key, _ = admin.create_tenant("newco")
    second = admin.issue_key("newco", label="ci")
    keys = admin.list_keys("newco")
    assert [k.label for k in keys] == ["first key", "ci"] and all(k.revoked_at is None for k in keys)
    other_container = TenantStore(env.rt.clients.dynamodb, env.rt.settings.table_name,
                                  cache_seconds=2.0)
    assert other_container.authenticate(f"Bearer {second}").name == "newco"
    admin.revoke_key("newco", keys[1].key_id)
    # this container forgets the key at once; another one within its cache time
    assert http.get("/v1/jobs", key=second).status_code == 401
    time.sleep(2.1)
    from chalicelib.tenants import Unauthorized

    with pytest.raises(Unauthorized):
        other_container.authenticate(f"Bearer {second}")
    assert http.get("/v1/jobs", key=key).status_code == 200  # the other key still works
    assert admin.list_keys("newco")[1].revoked_at is not None
    with pytest.raises(AdminError):
        admin.revoke_key("newco", "nosuchkey")


def test_policy_changes_the_tenants_quota(env, http, admin):
    key, _ = admin.create_tenant("newco")
    admin.set_policy("newco", max_active=1, retry_interval=5, max_retries=1)
    shown = admin.show("newco")
    assert shown["maxActive"] == 1 and shown["callbackRetryInterval"] == 5
    env.rt.tenants._tenants.clear()
    env.rt.tenants._cache.clear()
    assert http.post("/v1/jobs", {"service": "echo"}, key=key).status_code == 202
    assert http.post("/v1/jobs", {"service": "echo"}, key=key).status_code == 429
    admin.set_policy("newco", max_active=-1)
    assert admin.show("newco")["maxActive"] is None


def _deliver_one(env, http, key):
    with Receiver([200]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": rx.url}, key=key)
        assert resp.status_code == 202
        env.run_queue("jobs")
        for _ in range(20):
            env.run_queue("callbacks")
            if rx.requests:
                break
            time.sleep(0.1)
    return rx.requests[0]


def test_rotation_signs_with_both_secrets_until_the_window_closes(env, http, admin):
    key, old = admin.create_tenant("newco")
    new = admin.rotate_secret("newco", window_hours=1)
    env.rt.tenants._tenants.clear()
    req = _deliver_one(env, http, key)
    assert len(req["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(req["body"], req["headers"])  # receivers not yet switched
    Webhook(new).verify(req["body"], req["headers"])  # receivers already switched
    admin.finish_rotation("newco")
    env.rt.tenants._tenants.clear()
    req = _deliver_one(env, http, key)
    Webhook(new).verify(req["body"], req["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(req["body"], req["headers"])


def test_rotation_window_closes_by_itself(env, admin):
    admin.create_tenant("newco")
    admin.rotate_secret("newco", window_hours=1)
    tenant = env.rt.tenants.get_tenant("newco")
    assert len(tenant.signing_secrets(time.time())) == 2
    assert len(tenant.signing_secrets(time.time() + 3601)) == 1


def test_every_change_is_audited_without_secrets(env, admin, capsys):
    key, secret = admin.create_tenant("newco")
    new_key = admin.issue_key("newco")
    admin.revoke_key("newco", admin.list_keys("newco")[0].key_id)
    new_secret = admin.rotate_secret("newco")
    entries = admin.audit_log("newco")
    assert [e["action"] for e in entries] == ["tenant.create", "key.issue", "key.issue",
                                              "key.revoke", "secret.rotate"]
    assert all(e["actor"] == "ops@example.com" and e["at"] > 0 for e in entries)
    out = capsys.readouterr()
    everything = out.out + out.err + json.dumps(entries, default=str)
    for s in (key, secret, new_key, new_secret):
        assert s not in everything
    assert '"action":"key.revoke"' in out.out + out.err


@pytest.fixture
def cli_logging():
    """The CLI logs to stderr; give the Lambda's stdout logging back afterwards."""
    from chalicelib import telemetry

    yield
    telemetry.setup(stream="stdout")


def test_cli_round_trip(env, capsys, cli_logging):
    table = env.rt.settings.table_name
    assert main(["--table", table, "--actor", "ci", "--json", "create-tenant", "clico"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["apiKey"].startswith("jg_")
    assert main(["--table", table, "--actor", "ci", "--json", "list-keys", "clico"]) == 0
    keys = json.loads(capsys.readouterr().out)["keys"]
    assert len(keys) == 1 and created["apiKey"] not in json.dumps(keys)
    assert main(["--table", table, "--actor", "ci", "revoke-key", "clico", keys[0]["key_id"]]) == 0
    assert main(["--table", table, "--actor", "ci", "revoke-key", "clico", "nope"]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["--table", table, "--actor", "ci", "--json", "show-tenant", "ghost"]) == 1
