"""The S3 keys of a job's objects. Each kind has its own prefix, so lifecycle rules can
expire each kind on its own schedule (infra/template.yaml)."""

from __future__ import annotations


def result_key(tenant: str, job_id: str, token: str) -> str:
    # One key per lease: a worker whose lease lapsed can never overwrite the winner's result.
    return f"results/{tenant}/{job_id}/{token}"


def log_key(tenant: str, job_id: str, token: str) -> str:
    return f"logs/{tenant}/{job_id}/{token}.log"


def content_key(tenant: str, job_id: str) -> str:
    return f"inputs/{tenant}/{job_id}"
