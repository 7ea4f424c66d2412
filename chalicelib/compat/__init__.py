"""Compatibility routes: the five source APIs' own clients, served by thin translators over
the same JobsApi the main routes use (one module per source API, no second lifecycle and
no second store: a job submitted through one route is visible through every other).

Each module turns the source API's request into a JobsApi call and the job back into the
source API's shapes; app.py only registers the routes (docs/api.md, "Compatibility
routes")."""
