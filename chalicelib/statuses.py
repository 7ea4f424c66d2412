"""A job's states, spelled once (models.JobStatus repeats them as a Literal for pydantic and
the OpenAPI document; tests/test_layers.py holds the two equal). No imports: the OpenAPI
module uses them without loading the models."""

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    "queued", "running", "succeeded", "failed", "canceled"
)
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED})
