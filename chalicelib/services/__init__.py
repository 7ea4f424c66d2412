"""The service registry. A service is one module in this package that declares itself with
`register(Service(...))` at import; every module here is discovered (no list to edit).

Discovery walks the package's `__path__` with pkgutil, so it finds whatever `.py` files are
in `chalicelib/services/` wherever the package lives: Chalice ships `chalicelib/` whole
into the Lambda package, and the local runner and tests import it from the repository.
Modules whose name starts with `_`, and `base`, are helpers, not services."""

from __future__ import annotations

import importlib
import sys
import threading

from .base import (
    END_MARGIN_SECONDS,
    JOB_FUNCTION_TIMEOUT_SECONDS,
    MAX_LAMBDA_TIMEOUT_SECONDS,
    START_SLACK_SECONDS,
    Canceled,
    Context,
    Result,
    Retry,
    Service,
    TimedOut,
)

_REGISTRY: dict[str, Service] = {}
_ORIGINS: dict[str, str] = {}  # service name -> the module that declared it
_lock = threading.RLock()
_loaded = False
NOT_SERVICES = {"base"}


def register(service: Service) -> Service:
    """Called by a service module at import. A second, different service of the same name
    is refused: two modules silently fighting over a name would run the wrong code."""
    if not isinstance(service, Service):
        raise TypeError(f"register() takes a Service, not {type(service).__name__}")
    origin = sys._getframe(1).f_globals.get("__name__", "?")
    with _lock:
        known = _ORIGINS.get(service.name)
        if service.name in _REGISTRY and known != origin:
            raise ValueError(f"service {service.name!r} is declared twice ({known} and {origin})")
        _REGISTRY[service.name] = service
        _ORIGINS[service.name] = origin
    return service


def unregister(name: str) -> None:
    """Forget a service (tests that add their own remove them again)."""
    with _lock:
        _REGISTRY.pop(name, None)
        _ORIGINS.pop(name, None)


def get(name: str) -> Service | None:
    _load()
    return _REGISTRY.get(name)


def all_services() -> list[Service]:
    _load()
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def module_names() -> list[str]:
    """Every service module of the package, by full name."""
    import pkgutil  # discovery runs on the first request that needs a service

    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and m.name not in NOT_SERVICES)


def discover() -> None:
    """Import every service module not imported yet (they register themselves). Safe to
    repeat: tests that add a directory to `__path__` call it again."""
    global _loaded
    with _lock:
        importlib.invalidate_caches()  # a module added since the last look is found
        for name in module_names():
            importlib.import_module(name)
        _loaded = True


def _load() -> None:
    if not _loaded:
        discover()


__all__ = [
    "END_MARGIN_SECONDS", "JOB_FUNCTION_TIMEOUT_SECONDS", "MAX_LAMBDA_TIMEOUT_SECONDS",
    "START_SLACK_SECONDS", "Canceled",
    "Context", "Result", "Retry", "Service", "TimedOut", "all_services", "discover", "get",
    "module_names", "register", "unregister",
]
