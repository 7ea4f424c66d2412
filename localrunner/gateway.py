"""API Gateway's greedy path variables (`/{proxy+}`) for Chalice's local gateway, which
the local runner and the test client both use. Chalice 1.34 matches a route only when the
path has as many segments as the route (aws/chalice#2012, open), so without this an
unknown path answers Chalice's `403 Missing Authentication Token` locally while API
Gateway hands it to the app's catch-all route."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

_installed = False


def install_greedy_paths() -> None:
    """Make chalice.local.RouteMatcher fall back to the longest greedy route (idempotent)."""
    global _installed
    if _installed:
        return
    from chalice import local

    exact = local.RouteMatcher.match_route

    def match_route(self: Any, url: str) -> Any:
        try:
            return exact(self, url)
        except ValueError:
            parsed = urlparse(url)
            parts = parsed.path.rstrip("/").split("/")
            greedy = sorted((r for r in self.route_urls if r.endswith("+}")), key=len,
                            reverse=True)
            for route in greedy:
                captured = _match_prefix(route.split("/"), parts)
                if captured is not None:
                    return local.MatchResult(
                        route, captured, parse_qs(parsed.query, keep_blank_values=True))
            raise

    local.RouteMatcher.match_route = match_route  # type: ignore[method-assign]  # patched in
    _installed = True


def _match_prefix(route: list[str], parts: list[str]) -> dict[str, str] | None:
    """Path parameters when `parts` fits `route` (whose last segment is `{name+}`)."""
    head, greedy = route[:-1], route[-1]
    if len(parts) <= len(head):
        return None  # a greedy variable matches one segment at least
    captured = {}
    for want, got in zip(head, parts, strict=False):
        if want.startswith("{") and want.endswith("}"):
            captured[want[1:-1]] = got
        elif want != got:
            return None
    captured[greedy[1:-2]] = "/".join(parts[len(head):])
    return captured
