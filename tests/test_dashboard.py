"""The dashboard page: served without auth, locked down by CSP, and its script parses."""

from __future__ import annotations

import re
import shutil
import subprocess


def test_dashboard_is_served_without_credentials(env, http):
    resp = http.get("/dashboard", key=None)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    page = resp.body.decode()
    assert "/v1/jobs" in page and "Authorization" in page
    assert "innerHTML" not in page  # job fields are inserted as text, never as markup


def test_dashboard_script_is_valid_javascript(env, http, tmp_path):
    node = shutil.which("node")
    if node is None:  # node ships with every machine of this project's kind
        raise AssertionError("node is needed to check the dashboard's script")
    page = http.get("/dashboard", key=None).body.decode()
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    path = tmp_path / "dashboard.js"
    path.write_text(script)
    result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_favicon_answers_without_credentials(env, http):
    resp = http.get("/favicon.ico", key=None)
    assert resp.status_code == 204 and resp.body in (b"", "")


def test_dashboard_with_a_trailing_slash_calls_the_api_at_its_root(env, http):
    resp = http.get("/dashboard/", key=None)
    assert resp.status_code == 200
    page = resp.body.decode()
    # The API base comes from the page's location with /dashboard (and any slash) cut off,
    # so /dashboard/ and /<stage>/dashboard both call /v1/... at the right place.
    assert 'location.pathname.replace(/\\/dashboard\\/*$/, "")' in page
    assert "location.origin" in page
