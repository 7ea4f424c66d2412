"""The dashboard in a real browser (the system's Chromium, driven by Playwright) against the
real local runner: connect, submit, watch, open a failed job, redeliver, cancel, page.

Only a distribution's Chromium is used (`executable_path`), never a downloaded build. Without
one these tests are skipped, and pytest's summary says so (`-rs`); `.ci/run` installs it.
Every wait is event-driven (Playwright's expect/wait_for), never a fixed sleep."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localrunner.live import LiveRunner, live_runner

CHROMIUM = os.environ.get("JOBGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium, "
                "or set JOBGATE_CHROMIUM)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api",
                                      reason="browser tests skipped: playwright is not installed")
expect = playwright_sync.expect

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # generous: a loaded 2-core machine runs the runner, Chromium and pytest
ZONE = "Europe/Prague"
JOB_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveRunner]:
    # No local workers: jobs of the worker service `report` stay queued for the Workers panel.
    with live_runner(JOB_MAX_ATTEMPTS="1", JOBGATE_LOCAL_WORKERS="0") as runner:
        yield runner


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Console errors and uncaught exceptions of a page; a test may allow HTTP statuses it
    provokes on purpose (Chromium logs every 4xx answer to fetch as a console error)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: set[int] = set()

    def allow(self, *statuses: int) -> None:
        self.allowed.update(statuses)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors
                if not any(f"status of {s} " in e for s in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(timezone_id=ZONE, locale="en-GB")
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    pg.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    try:
        yield pg
    finally:
        context.close()
    assert console.unexpected() == [], "console errors"


def api(live: LiveRunner, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
    req = urllib.request.Request(
        live.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key or live.api_key}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310  (our runner)
        text = resp.read()
    return json.loads(text) if text else None


def connect(page: Any, live: LiveRunner, path: str = "/dashboard", key: str | None = None) -> None:
    page.goto(live.url + path)
    page.fill("#key", key or live.api_key)
    page.click("#auth button[type=submit]")
    expect(page.locator("#connection")).to_have_text("connected")


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'tr.job[data-job-id="{job_id}"]')


def ticks(page: Any) -> int:
    return int(page.evaluate("state.ticks"))


def wait_ticks(page: Any, n: int) -> None:
    """Until the page has polled n more times (its own clock, not ours)."""
    target = ticks(page) + n
    page.wait_for_function("t => state.ticks >= t", arg=target, timeout=WAIT_MS)


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 204 (the local runner allows loopback)."""

    def __init__(self) -> None:
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- tests ---------------------------------------------------------------------------------

def test_connect_submit_and_watch_progress(live: LiveRunner, page: Any) -> None:
    connect(page, live, "/dashboard/")  # the trailing slash once sent calls to /dashboard//v1
    expect(page.locator("#zone")).to_have_text(f"Times in {ZONE}")
    page.select_option("#service", "sleep")
    template = json.loads(page.input_value("#input"))
    assert {"seconds", "steps", "fail"} <= set(template)  # from the service's inputSchema
    page.fill("#input", json.dumps({"seconds": 8, "steps": 4}))
    page.fill("#variables", "NOTE=from the browser")
    page.click("#submit button[type=submit]")

    expect(page.locator("#d-id")).to_have_text(JOB_ID)
    job_id = page.locator("#d-id").inner_text()
    job_row = row(page, job_id)
    expect(job_row).to_have_class("job running selected", timeout=WAIT_MS)
    handle = job_row.element_handle()
    # Progress shows while it runs: a partly filled bar and a percentage in the job view.
    page.wait_for_function(
        """id => { const r = document.querySelector(`tr.job[data-job-id="${id}"]`);
                   const w = parseFloat(r.querySelector(".bar > div").style.width);
                   return r.classList.contains("running") && w > 0 && w < 100; }""",
        arg=job_id, timeout=WAIT_MS)
    expect(page.locator("#d-log-live")).to_have_text("(live)")
    expect(page.locator("#d-status")).to_have_text("succeeded", timeout=WAIT_MS)
    expect(job_row).to_have_class("job succeeded selected")
    # Updated in place: the very same row element, still selected, no redraw.
    assert handle.evaluate("e => e.isConnected")
    expect(page.locator("#d-percent")).to_have_text("100 %")
    expect(page.locator("#d-result-type")).to_have_text("application/json")
    expect(page.locator("#d-result-link")).to_have_attribute("href", re.compile(r"^https?://"))
    expect(job_row.locator("a")).to_be_visible()
    expect(page.locator("#d-log")).not_to_have_text("")
    expect(page.locator("#d-log-live")).to_have_text("")
    assert ZONE not in page.locator("#d-fields").inner_text()  # the zone is named once, above
    assert "attempts" in page.locator("#d-fields").inner_text()


def test_upload_a_document_for_a_content_service(live: LiveRunner, page: Any,
                                                  tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("id,amount\n1,10\n2,20\n3,30\n")
    connect(page, live)
    page.select_option("#service", "dataload")
    expect(page.locator("#content-label")).to_be_visible()
    page.set_input_files("#content", str(csv))
    page.fill("#variables", "MAX=2")
    page.click("#submit button[type=submit]")
    expect(page.locator("#d-id")).to_have_text(JOB_ID)
    expect(page.locator("#d-status")).to_have_text("succeeded", timeout=WAIT_MS)
    job_id = page.locator("#d-id").inner_text()
    assert api(live, "GET", f"/v1/jobs/{job_id}")["service"] == "dataload"


def test_failed_job_shows_its_error_and_deliveries_and_redelivers(live: LiveRunner, page: Any
                                                                    ) -> None:
    receiver = Receiver()
    try:
        job = api(live, "POST", "/v1/jobs", {
            "service": "sleep", "input": {"seconds": 0.1, "steps": 1, "fail": True},
            "callbackUrl": receiver.url})
        connect(page, live)
        failed = row(page, job["jobId"])
        expect(failed).to_have_class("job failed", timeout=WAIT_MS)
        expect(failed.locator(".summary")).to_contain_text("failed on request")
        failed.click()
        expect(page.locator("#d-error")).to_be_visible()
        expect(page.locator("#d-error-message")).to_contain_text("failed on request")
        expect(page.locator("#d-deliveries tr")).to_have_count(1, timeout=WAIT_MS)
        expect(page.locator("#d-deliveries tr").first).to_contain_text("HTTP 204")
        expect(page.locator("#d-callback-fields")).to_contain_text("delivered", timeout=WAIT_MS)
        page.click("#d-redeliver")
        expect(page.locator("#d-deliveries tr")).to_have_count(2, timeout=WAIT_MS)
        expect(page.locator("#detail-errors")).to_be_empty()
        assert receiver.count == 2
    finally:
        receiver.close()


def test_cancel_from_the_list_and_delete_from_the_job_view(live: LiveRunner, page: Any) -> None:
    job = api(live, "POST", "/v1/jobs", {"service": "sleep", "input": {"seconds": 120}})
    connect(page, live)
    job_row = row(page, job["jobId"])
    expect(job_row.locator("button", has_text="cancel")).to_be_visible()
    job_row.locator("button", has_text="cancel").click()
    expect(job_row).to_have_class("job canceled", timeout=WAIT_MS)
    expect(job_row.locator("button", has_text="cancel")).to_be_hidden()
    job_row.click()
    expect(page.locator("#d-status")).to_have_text("canceled")
    expect(page.locator("#d-cancel")).to_be_hidden()
    page.click("#d-delete")
    expect(job_row).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#detail")).to_be_hidden()


def test_chain_links_open_the_next_and_previous_job(live: LiveRunner, page: Any) -> None:
    first = api(live, "POST", "/v1/jobs", {"service": "echo", "input": {"a": 1},
                                            "chain": [{"service": "echo", "input": {}}]})
    connect(page, live)
    row(page, first["jobId"]).click()
    expect(page.locator("#d-next")).to_be_visible(timeout=WAIT_MS)
    page.click("#d-next")
    expect(page.locator("#d-id")).not_to_have_text(first["jobId"])
    expect(page.locator("#d-previous")).to_be_visible()
    page.click("#d-previous")
    expect(page.locator("#d-id")).to_have_text(first["jobId"])


def test_pages_through_the_list(live: LiveRunner, page: Any) -> None:
    for i in range(30):
        api(live, "POST", "/v1/jobs", {"service": "snapshot", "input": {"rows": 1 + i}})
    first = api(live, "GET", "/v1/jobs?service=snapshot&limit=25")
    second = api(live, "GET", f"/v1/jobs?service=snapshot&limit=25&cursor={first['nextCursor']}")
    connect(page, live)
    page.select_option("#filter-service", "snapshot")
    ids = page.locator("tr.job")
    expect(ids).to_have_count(25)
    expect(ids.first).to_have_attribute("data-job-id", first["jobs"][0]["jobId"])
    expect(page.locator("#newer")).to_be_disabled()
    page.click("#older")
    expect(page.locator("#page-label")).to_have_text("page 2")
    expect(ids).to_have_count(len(second["jobs"]))
    assert [ids.nth(i).get_attribute("data-job-id") for i in range(len(second["jobs"]))] == \
        [j["jobId"] for j in second["jobs"]]
    page.click("#newer")
    expect(ids.first).to_have_attribute("data-job-id", first["jobs"][0]["jobId"])
    page.select_option("#status", "canceled")
    page.select_option("#filter-service", "snapshot")
    expect(page.locator("#empty")).to_have_text("No job matches these filters.")


def test_errors_stay_with_their_form_and_details_until_dismissed(live: LiveRunner, page: Any,
                                                                 console: Console) -> None:
    console.allow(422)
    connect(page, live)
    page.select_option("#service", "sleep")
    page.fill("#input", json.dumps({"seconds": -1}))
    page.click("#submit button[type=submit]")
    error = page.locator("#submit-errors .error")
    expect(error).to_contain_text("HTTP 422 validation_error")
    expect(error.locator("li.detail")).to_contain_text("seconds")
    wait_ticks(page, 2)  # two refreshes of the list later, it is still there
    expect(error).to_have_count(1)
    error.locator("button.dismiss").click()
    expect(error).to_have_count(0)
    page.fill("#input", "{not json")
    page.click("#submit button[type=submit]")
    expect(error).to_contain_text("not valid JSON")


def test_a_wrong_key_clears_the_previous_tenants_jobs(live: LiveRunner, page: Any,
                                                      console: Console) -> None:
    console.allow(401)
    job = api(live, "POST", "/v1/jobs", {"service": "echo", "input": {}})
    connect(page, live)
    expect(row(page, job["jobId"])).to_have_count(1)
    row(page, job["jobId"]).click()
    page.fill("#key", "not-a-key")
    page.click("#auth button[type=submit]")
    expect(page.locator("#auth-errors .error")).to_contain_text("HTTP 401")
    expect(page.locator("tr.job")).to_have_count(0)
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("not connected")
    page.locator("#auth-errors button.dismiss").click()
    connect(page, live, key=live.other_key)  # another tenant: none of the first one's jobs
    expect(page.locator("#empty")).to_be_visible()
    expect(row(page, job["jobId"])).to_have_count(0)


def test_workers_panel_shows_waiting_jobs_and_the_oldest(live: LiveRunner, page: Any) -> None:
    jobs = [api(live, "POST", "/v1/jobs", {"service": "report", "input": {"seconds": 5}})
            for _ in range(2)]
    try:
        connect(page, live)
        panel = page.locator('#workers-body tr[data-service="report"]')
        expect(panel.locator(".waiting")).to_have_text("2", timeout=WAIT_MS)
        expect(panel.locator(".running")).to_have_text("0")
        expect(panel.locator(".oldest")).to_contain_text(" s (since ")
    finally:
        for job in jobs:
            api(live, "POST", f"/v1/jobs/{job['jobId']}/cancel")
