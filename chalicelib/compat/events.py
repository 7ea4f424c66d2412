"""The webhook body a tenant asked for (`jobgate-admin set-policy --callback-body outputs`
or `--callback-format shoptet`), rendered once at the job's end like the ordinary event."""

from __future__ import annotations

from ..jobs import Job
from ..tenants import Tenant
from . import baw, shoptet


def render(job: Job, tenant: Tenant | None, standard: str) -> str:
    if tenant is None:
        return standard
    if tenant.callback_body == "outputs":
        ref = baw.outputs_reference(job, standard)
        if ref is not None:
            return ref
    if tenant.callback_format == "shoptet":
        return shoptet.webhook_event(job)
    return standard
