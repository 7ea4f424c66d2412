"""Deployment settings, read once from the environment (docs/api.md's settings table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .urls import parse_host_ports


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    return int(raw) if raw.strip() else default


@dataclass(frozen=True)
class Settings:
    table_name: str = "jobgate-jobs"
    bucket_name: str = "jobgate-results"
    jobs_queue_url: str = ""
    callbacks_queue_url: str = ""
    jobs_dlq_url: str = ""
    callbacks_dlq_url: str = ""
    region: str = "us-east-1"
    allow_private_callbacks: bool = False
    # host:port pairs no callback may reach, whatever allow_private_callbacks says (the local
    # runner lists its own API and its embedded AWS endpoint).
    forbidden_callback_targets: tuple[tuple[str, int], ...] = ()
    disabled_services: frozenset[str] = field(default_factory=frozenset)
    max_queue_depth: int = 10_000
    tenant_max_active: int = 1000
    job_max_attempts: int = 3
    job_retry_base_seconds: int = 2
    callback_retry_interval_seconds: int = 60
    callback_max_retries: int = 5
    result_ttl_seconds: int = 86_400
    job_ttl_seconds: int = 2_592_000
    inline_log_limit: int = 4096
    presign_max_seconds: int = 3600
    job_lease_seconds: int = 60
    job_max_runtime_seconds: int = 86_400
    trusted_proxy: bool = False  # a proxy we trust sets X-Forwarded-Host/-Proto
    public_url: str = ""  # scheme://host[:port] of this API where API Gateway does not say it
    link_secret: str = ""  # JOBGATE_LINK_SECRET: signs result links (chalicelib/links.py)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        disabled = {s.strip() for s in env.get("JOBGATE_DISABLED_SERVICES", "").split(",")}
        return cls(
            table_name=env.get("JOBGATE_TABLE", cls.table_name),
            bucket_name=env.get("JOBGATE_BUCKET", cls.bucket_name),
            jobs_queue_url=env.get("JOBGATE_JOBS_QUEUE_URL", ""),
            callbacks_queue_url=env.get("JOBGATE_CALLBACKS_QUEUE_URL", ""),
            jobs_dlq_url=env.get("JOBGATE_JOBS_DLQ_URL", ""),
            callbacks_dlq_url=env.get("JOBGATE_CALLBACKS_DLQ_URL", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or cls.region,
            allow_private_callbacks=_bool(env.get("JOBGATE_ALLOW_PRIVATE_CALLBACKS")),
            forbidden_callback_targets=parse_host_ports(
                env.get("JOBGATE_FORBIDDEN_CALLBACK_TARGETS", "")),
            disabled_services=frozenset(s for s in disabled if s),
            max_queue_depth=_int(env, "JOBGATE_MAX_QUEUE_DEPTH", cls.max_queue_depth),
            tenant_max_active=_int(env, "JOBGATE_TENANT_MAX_ACTIVE", cls.tenant_max_active),
            job_max_attempts=_int(env, "JOB_MAX_ATTEMPTS", cls.job_max_attempts),
            job_retry_base_seconds=_int(env, "JOB_RETRY_BASE_SECONDS", cls.job_retry_base_seconds),
            callback_retry_interval_seconds=_int(
                env, "CALLBACK_RETRY_INTERVAL_SECONDS", cls.callback_retry_interval_seconds
            ),
            callback_max_retries=_int(env, "CALLBACK_MAX_RETRIES", cls.callback_max_retries),
            result_ttl_seconds=_int(env, "RESULT_TTL_SECONDS", cls.result_ttl_seconds),
            job_ttl_seconds=_int(env, "JOB_TTL_SECONDS", cls.job_ttl_seconds),
            job_lease_seconds=_int(env, "JOB_LEASE_SECONDS", cls.job_lease_seconds),
            job_max_runtime_seconds=_int(env, "JOB_MAX_RUNTIME_SECONDS",
                                         cls.job_max_runtime_seconds),
            trusted_proxy=_bool(env.get("JOBGATE_TRUSTED_PROXY")),
            public_url=env.get("JOBGATE_PUBLIC_URL", "").strip().rstrip("/"),
            link_secret=env.get("JOBGATE_LINK_SECRET", ""),
        )
