"""The service registry. Adding a service is one module that calls `register`."""

from __future__ import annotations

from .base import Canceled, Context, Result, Service

_REGISTRY: dict[str, Service] = {}


def register(service: Service) -> Service:
    _REGISTRY[service.name] = service
    return service


def get(name: str) -> Service | None:
    _load()
    return _REGISTRY.get(name)


def all_services() -> list[Service]:
    _load()
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        from . import dataload, echo, report, sleep, snapshot  # noqa: F401  (registration on import)

        _loaded = True


__all__ = ["Canceled", "Context", "Result", "Service", "all_services", "get", "register"]
