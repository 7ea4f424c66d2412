"""A job's item attribute names (camelCase of the Job fields) and what a change written in
them does to a Job. Pure: the worker and the API describe a change in these names, the
DynamoDB adapter (store.py) writes them, and neither needs the other's imports."""

from __future__ import annotations

import dataclasses
from typing import Any

from .jobs import Job

FIELDS = {f.name: "".join(w.title() if i else w for i, w in enumerate(f.name.split("_")))
          for f in dataclasses.fields(Job)}  # Job field → item attribute
ATTRS = {v: k for k, v in FIELDS.items()}  # item attribute → Job field
_JOB_FIELDS = {f.name: f for f in dataclasses.fields(Job)}


def apply(job: Job, values: dict[str, Any]) -> Job:
    """The job as it will be once `values` (item attribute names) are written. A name that
    is no job attribute is refused (ValueError): the store would still write it."""
    unknown = sorted(set(values) - set(ATTRS))
    if unknown:
        raise ValueError(f"not job attributes: {', '.join(unknown)}")
    changes = {}
    for attr, value in values.items():
        f = _JOB_FIELDS[ATTRS[attr]]
        if value is None and f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()  # a removed attribute reads back as its default
        changes[f.name] = value
    return dataclasses.replace(job, **changes)
