"""Shapes that only the OpenAPI document needs (the webhook event). Kept apart from
models.py so the routes never import them; the document is generated from both."""

from __future__ import annotations

from typing import Literal

from .models import ApiModel, JobResource


class WebhookEvent(ApiModel):
    """Body of the signed POST to a job's `callbackUrl` when the job ends (succeeded,
    failed or canceled). The same event, under the same `webhook-id`, on every retry."""

    type: Literal["job.finished"]
    timestamp: str
    data: JobResource
