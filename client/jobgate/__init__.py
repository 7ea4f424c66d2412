"""Jobgate: a Python SDK and CLI for the Jobgate async job API.

    from jobgate import Client

    with Client("http://127.0.0.1:8000", "API_KEY") as jg:
        job = jg.submit("sleep", {"seconds": 3})
        done = job.wait(timeout=60, on_progress=lambda j: print(j.status, j.percent))
        print(done.download_result())

    from jobgate import Worker   # runs the jobs of worker services (runsOn: worker)

    Worker("http://127.0.0.1:8000", "jgw_...", {"report": report}, concurrency=4).run()
"""

__version__ = "0.1.0"

from .client import Client  # noqa: E402
from .errors import (  # noqa: E402
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    JobgateError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
    WaitTimeout,
    WebhookVerificationFailed,
)
from .models import Callback, Delivery, Job, JobError, Progress, Service, WebhookEvent  # noqa: E402
from .webhooks import verify_webhook  # noqa: E402
from .worker import Worker, WorkerStopped  # noqa: E402
from .worker_context import JobContext, Retry  # noqa: E402
from .worker_results import Result  # noqa: E402

__all__ = [
    "BadRequest", "Callback", "Client", "Conflict", "ConnectionFailed", "Delivery", "Forbidden",
    "Gone", "Job", "JobContext", "JobError", "JobgateError", "NotFound", "PayloadTooLarge", "Progress",
    "RateLimited", "Result", "Retry", "Service", "Unauthorized", "Unavailable", "UnsupportedMediaType",
    "ValidationFailed", "WaitTimeout", "WebhookEvent", "WebhookVerificationFailed", "Worker",
    "WorkerStopped", "__version__", "verify_webhook",
]
