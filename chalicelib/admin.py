"""Operator commands for a deployed Jobgate: tenants, API keys, webhook secrets, policies.

They talk to the jobs table with the operator's own AWS credentials rather than through
admin routes on the public API: no admin surface to attack, IAM decides who may run them,
and CloudTrail records the calls. Every change is an audit line (who, what, when); keys
and secrets are printed once to the operator and never logged."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from . import telemetry
from .tenants import (
    TENANT_NAME,
    TENANT_NAME_RULE,
    KeyInfo,
    Tenant,
    TenantStore,
    new_api_key,
    new_webhook_secret,
)
from .workerkeys import WorkerKey, WorkerKeyStore, new_worker_key

audit = logging.getLogger("jobgate.audit")
DEFAULT_WINDOW_HOURS = 24.0
MIN_KEY_LENGTH = 16
POLICY_WORDS = {"retry_schedule": ("exponential", "fixed"), "callback_body": ("event", "outputs"),
                "callback_format": ("standard", "shoptet")}  # the first word is the default


class AdminError(Exception):
    pass


class WorkerKeyAdmin:
    """Worker keys (`jgw_...`), per deployment, each limited to named services."""

    def __init__(self, keys: WorkerKeyStore, actor: str, clock: Any = time.time):
        self.keys, self.actor, self.clock = keys, actor, clock

    def _audit(self, action: str, **fields: Any) -> None:
        audit.info(action, extra={"audit": True, "action": action, "actor": self.actor,
                                  "at": self.clock(), **fields})

    def issue(self, services: list[str], label: str = "") -> str:
        names = sorted({s.strip() for s in services if s.strip()})
        if not names:
            raise AdminError("name the services the key may claim: --services report,export")
        key = new_worker_key()
        kid = self.keys.add(key, names, label=label, created_at=self.clock())
        self._audit("worker-key.issue", keyId=kid, services=names, label=label)
        return key

    def list(self) -> list[WorkerKey]:
        return self.keys.list()

    def revoke(self, kid: str) -> None:
        if not self.keys.revoke(kid, now=self.clock()):
            raise AdminError(f"no worker key {kid!r}")
        self._audit("worker-key.revoke", keyId=kid)


class TenantAdmin:
    def __init__(self, tenants: TenantStore, actor: str, clock: Any = time.time):
        self.tenants, self.actor, self.clock = tenants, actor, clock

    def _audit(self, action: str, tenant: str, **fields: Any) -> None:
        """A structured log line and a durable record in the tenant's partition."""
        record = {"action": action, "tenant": tenant, "actor": self.actor, "at": self.clock(),
                  **fields}
        audit.info(action, extra={"audit": True, **record})
        self.tenants.add_audit(tenant, record)

    def audit_log(self, tenant: str) -> list[dict[str, Any]]:
        return self.tenants.list_audit(tenant)

    def _tenant(self, name: str) -> Tenant:
        tenant = self.tenants.get_tenant(name)
        if tenant is None:
            raise AdminError(f"no tenant named {name!r}")
        return tenant

    def create_tenant(self, name: str, label: str = "first key") -> tuple[str, str]:
        """A new tenant with a webhook secret and a first API key: (api_key, secret)."""
        if not TENANT_NAME.fullmatch(name):
            raise AdminError(f"{TENANT_NAME_RULE}, got {name!r}")
        secret = new_webhook_secret()
        try:
            self.tenants.create_tenant(Tenant(name=name, webhook_secrets=[secret]))
        except Exception as exc:
            if "ConditionalCheckFailed" in str(exc):
                raise AdminError(f"tenant {name!r} already exists") from None
            raise
        self._audit("tenant.create", name)
        return self.issue_key(name, label), secret

    def show(self, name: str) -> dict[str, Any]:
        t = self._tenant(name)
        return {"name": t.name, "callbackRetryInterval": t.callback_retry_interval,
                "callbackMaxRetries": t.callback_max_retries, "maxActive": t.max_active,
                "rotationEndsAt": t.rotation_ends_at,
                "signingSecrets": len(t.signing_secrets(self.clock())),
                "retrySchedule": t.retry_schedule or "exponential",
                "callbackBody": t.callback_body or "event",
                "callbackFormat": t.callback_format or "standard",
                "starfishJobs": t.starfish_jobs}

    def set_policy(self, name: str, starfish_jobs: list[str] | None = None,
                   **policy: int | str | None) -> None:
        """Callback retry policy and quota; 0 or a negative value clears an override.
        Compatibility policies: a default word (exponential, event, standard) clears one;
        `starfish_jobs` entries are `NAME=service` (`NAME=` removes NAME)."""
        tenant = self._tenant(name)
        attrs = {"retry_interval": "callbackRetryInterval", "max_retries": "callbackMaxRetries",
                 "max_active": "maxActive"}
        values: dict[str, Any] = {attrs[k]: (None if v < 0 else v)
                                  for k, v in policy.items() if isinstance(v, int)}
        for key, attr in (("retry_schedule", "retrySchedule"), ("callback_body", "callbackBody"),
                          ("callback_format", "callbackFormat")):
            word = policy.get(key)
            if isinstance(word, str):
                allowed = POLICY_WORDS[key]
                if word not in allowed:
                    raise AdminError(f"{key.replace('_', '-')} is one of {', '.join(allowed)}")
                values[attr] = None if word == allowed[0] else word
        if starfish_jobs:
            jobs = dict(tenant.starfish_jobs)
            for entry in starfish_jobs:
                job, sep, service = entry.partition("=")
                if not sep or not job.strip():
                    raise AdminError(f"--starfish-job takes NAME=service, not {entry!r}")
                if service.strip():
                    jobs[job.strip()] = service.strip()
                else:
                    jobs.pop(job.strip(), None)
            values["starfishJobs"] = jobs or None
        if not values:
            raise AdminError("nothing to set")
        self.tenants.update_tenant(name, values)
        self._audit("tenant.policy", name, **{k: v for k, v in values.items()})

    def import_key(self, tenant: str, key: str, label: str = "imported",
                   allow_weak: bool = False) -> str:
        """Store a key the operator chose (e.g. the `--user name:secret` of an existing Hop
        setup), hashed like any other; returns its key ID. Short keys are guessable, so
        they need `allow_weak`."""
        self._tenant(tenant)
        key = key.strip()
        if not key or any(c.isspace() for c in key) or len(key) > 512:
            raise AdminError("a key is 1-512 characters without whitespace")
        if len(key) < MIN_KEY_LENGTH and not allow_weak:
            raise AdminError(f"the key has {len(key)} characters; at least {MIN_KEY_LENGTH} "
                             "unless --allow-weak-key")
        kid = self.tenants.add_key(tenant, key, label=label, created_at=self.clock())
        self._audit("key.import", tenant, keyId=kid, label=label, weak=len(key) < MIN_KEY_LENGTH)
        return kid

    def issue_key(self, tenant: str, label: str = "") -> str:
        self._tenant(tenant)
        key = new_api_key()
        kid = self.tenants.add_key(tenant, key, label=label, created_at=self.clock())
        self._audit("key.issue", tenant, keyId=kid, label=label)
        return key

    def list_keys(self, tenant: str) -> list[KeyInfo]:
        self._tenant(tenant)
        return self.tenants.list_keys(tenant)

    def revoke_key(self, tenant: str, kid: str) -> None:
        if not self.tenants.revoke_key(tenant, kid, now=self.clock()):
            raise AdminError(f"tenant {tenant!r} has no key {kid!r}")
        self._audit("key.revoke", tenant, keyId=kid)

    def rotate_secret(self, tenant: str, window_hours: float = DEFAULT_WINDOW_HOURS) -> str:
        """A new current secret; the previous one keeps signing until the window closes."""
        t = self._tenant(tenant)
        secret = new_webhook_secret()
        ends = self.clock() + window_hours * 3600
        self.tenants.update_tenant(tenant, {"webhookSecrets": [secret, *t.webhook_secrets[:1]],
                                            "rotationEndsAt": ends})
        self._audit("secret.rotate", tenant, windowEndsAt=ends)
        return secret

    def finish_rotation(self, tenant: str) -> None:
        t = self._tenant(tenant)
        self.tenants.update_tenant(tenant, {"webhookSecrets": t.webhook_secrets[:1],
                                            "rotationEndsAt": None})
        self._audit("secret.finish-rotation", tenant)


def _actor(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        import boto3

        return str(boto3.client("sts").get_caller_identity()["Arn"])
    except Exception:  # noqa: BLE001  (no STS here: fall back to the OS user)
        return os.environ.get("USER") or "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobgate-admin", description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default=os.environ.get("JOBGATE_TABLE", "jobgate-prod-jobs"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION")
                   or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--actor", help="who is acting (default: your AWS identity)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-tenant", help="create a tenant, its secret and a first key")
    c.add_argument("tenant")
    sub.add_parser("show-tenant").add_argument("tenant")
    s = sub.add_parser("set-policy", help="callback retries and quota (-1 clears)")
    s.add_argument("tenant")
    s.add_argument("--retry-interval", type=int)
    s.add_argument("--max-retries", type=int)
    s.add_argument("--max-active", type=int)
    s.add_argument("--retry-schedule", choices=POLICY_WORDS["retry_schedule"],
                   help="webhook retries: every interval (fixed, IBM BAW) or doubling")
    s.add_argument("--callback-body", choices=POLICY_WORDS["callback_body"],
                   help="outputs: POST the job's result itself (IBM BAW)")
    s.add_argument("--callback-format", choices=POLICY_WORDS["callback_format"],
                   help="shoptet: Shoptet's job:finished webhook body")
    s.add_argument("--starfish-job", action="append", metavar="NAME=service",
                   help="map a Starfish jobID to a service (repeatable; NAME= removes)")
    i = sub.add_parser("issue-key", help="a new API key (shown once)")
    i.add_argument("tenant")
    i.add_argument("--label", default="")
    _import_key_parser(sub)
    sub.add_parser("list-keys").add_argument("tenant")
    r = sub.add_parser("revoke-key", help="the key answers 401 within seconds")
    r.add_argument("tenant")
    r.add_argument("key_id")
    ro = sub.add_parser("rotate-secret", help="new webhook secret; both sign during the window")
    ro.add_argument("tenant")
    ro.add_argument("--window-hours", type=float, default=DEFAULT_WINDOW_HOURS)
    sub.add_parser("finish-rotation", help="stop signing with the previous secret").add_argument(
        "tenant")
    sub.add_parser("audit-log", help="who changed what, oldest first").add_argument("tenant")
    w = sub.add_parser("issue-worker-key", help="a worker key (jgw_..., shown once)")
    w.add_argument("--services", required=True, help="comma-separated worker services")
    w.add_argument("--label", default="")
    sub.add_parser("list-worker-keys", help="worker keys and their services")
    sub.add_parser("revoke-worker-key", help="the key answers 401 within seconds").add_argument(
        "key_id")
    return p


def run(args: argparse.Namespace, admin: TenantAdmin,
        workers: WorkerKeyAdmin | None = None) -> Any:
    if args.cmd.endswith("worker-key") or args.cmd == "list-worker-keys":
        assert workers is not None
        return run_worker_keys(args, workers)
    match args.cmd:
        case "create-tenant":
            key, secret = admin.create_tenant(args.tenant)
            return {"tenant": args.tenant, "apiKey": key, "webhookSecret": secret}
        case "show-tenant":
            return admin.show(args.tenant)
        case "set-policy":
            admin.set_policy(args.tenant, retry_interval=args.retry_interval,
                             max_retries=args.max_retries, max_active=args.max_active,
                             retry_schedule=args.retry_schedule, callback_body=args.callback_body,
                             callback_format=args.callback_format,
                             starfish_jobs=args.starfish_job)
            return admin.show(args.tenant)
        case "issue-key":
            return {"tenant": args.tenant, "apiKey": admin.issue_key(args.tenant, args.label)}
        case "import-key":
            return import_key_command(args, admin)
        case "list-keys":
            return {"keys": [asdict(k) for k in admin.list_keys(args.tenant)]}
        case "revoke-key":
            admin.revoke_key(args.tenant, args.key_id)
            return {"revoked": args.key_id}
        case "rotate-secret":
            return {"tenant": args.tenant,
                    "webhookSecret": admin.rotate_secret(args.tenant, args.window_hours)}
        case "finish-rotation":
            admin.finish_rotation(args.tenant)
            return admin.show(args.tenant)
        case "audit-log":
            return {"entries": admin.audit_log(args.tenant)}
    raise AdminError(f"unknown command {args.cmd}")


def run_worker_keys(args: argparse.Namespace, workers: WorkerKeyAdmin) -> Any:
    match args.cmd:
        case "issue-worker-key":
            return {"workerKey": workers.issue(args.services.split(","), args.label)}
        case "list-worker-keys":
            return {"workerKeys": [asdict(k) for k in workers.list()]}
        case "revoke-worker-key":
            workers.revoke(args.key_id)
            return {"revoked": args.key_id}
    raise AdminError(f"unknown command {args.cmd}")


def _import_key_parser(sub: Any) -> None:
    k = sub.add_parser("import-key", help="store a key you choose (read from a file)")
    k.add_argument("tenant")
    k.add_argument("--key-file", required=True, help="file holding the key ('-' = stdin)")
    k.add_argument("--label", default="imported")
    k.add_argument("--allow-weak-key", action="store_true",
                   help=f"accept a key under {MIN_KEY_LENGTH} characters")


def import_key_command(args: argparse.Namespace, admin: TenantAdmin) -> dict[str, Any]:
    """The key comes from a file, never the command line (shell history, `ps`)."""
    try:
        text = sys.stdin.read() if args.key_file == "-" else \
            open(args.key_file, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise AdminError(f"cannot read the key file: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise AdminError("the key file must hold exactly one key on one line")
    kid = admin.import_key(args.tenant, lines[0], args.label, args.allow_weak_key)
    return {"tenant": args.tenant, "keyId": kid}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    telemetry.setup(stream="stderr")
    from .connections import create_clients

    clients = create_clients(args.region)
    actor = _actor(args.actor)
    admin = TenantAdmin(TenantStore(clients.dynamodb, args.table), actor)
    workers = WorkerKeyAdmin(WorkerKeyStore(clients.dynamodb, args.table), actor)
    try:
        out = run(args, admin, workers)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, default=str))
    else:
        for k, v in (out.items() if isinstance(out, dict) else []):
            print(f"{k}: {json.dumps(v, default=str) if isinstance(v, list | dict) else v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
