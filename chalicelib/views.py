"""Bodies that are the same for every tenant."""

from __future__ import annotations

from typing import Any

from . import services
from .models import ServiceInfo, ServiceList
from .settings import Settings


def services_body(settings: Settings) -> dict[str, Any]:
    items = [
        ServiceInfo(
            name=s.name, enabled=s.name not in settings.disabled_services,
            description=s.description, input_schema=s.input_schema(),
            status_variables=list(s.status_variables), content_variable=s.content_variable,
            timeout_seconds=s.timeout_seconds,
            result_ttl_seconds=s.result_ttl_seconds or settings.result_ttl_seconds,
        )
        for s in services.all_services()
    ]
    return ServiceList(services=items).dump()
