"""The Jobgate HTTP client (synchronous, on httpx)."""

from __future__ import annotations

import builtins
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin

import httpx

from . import __version__
from .errors import (
    ConnectionFailed,
    JobgateError,
    RateLimited,
    Unavailable,
    WaitTimeout,
    error_for,
    parse_retry_after,
)
from .models import Delivery, Job, Service

DEFAULT_POLL_SECONDS = 1.0
MIN_POLL_SECONDS = 0.2
MAX_PREFER_WAIT = 20
RESERVED_QUERY = ("runId", "callbackUrl", "logLevel")
CHUNK = 64 * 1024

_sleep = time.sleep  # tests replace it to see the delays
_monotonic = time.monotonic

Content = bytes | str | IO[bytes] | os.PathLike[str]


class Client:
    """A Jobgate API client.

    `Client(url, api_key)` authenticates with `Authorization: Bearer <api_key>`; pass
    `tenant=` to use HTTP Basic `<tenant>:<api_key>` instead. `url` is the API's base
    (scheme://host[/stage]); both default to `JOBGATE_URL` and `JOBGATE_API_KEY`.
    Every method raises a `JobgateError` subclass for an error answer, and
    `ConnectionFailed` when there is no answer.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, tenant: str | None = None,
        timeout: float = 30.0, poll_interval: float = DEFAULT_POLL_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ):
        url = (url or os.environ.get("JOBGATE_URL") or "").strip()
        api_key = api_key or os.environ.get("JOBGATE_API_KEY") or ""
        if not url:
            raise ValueError("no API URL: pass url= or set JOBGATE_URL")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the API URL must start with http:// or https://, not {url!r}")
        if not api_key:
            raise ValueError("no API key: pass api_key= or set JOBGATE_API_KEY")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.poll_interval = poll_interval
        auth: httpx.Auth | None = httpx.BasicAuth(tenant, api_key) if tenant else None
        headers = {"Accept": "application/json", "User-Agent": f"jobgate-python/{__version__}"}
        if not tenant:
            headers["Authorization"] = f"Bearer {api_key}"
        self._transport = transport
        self._http = httpx.Client(base_url=self.url + "/", headers=headers, auth=auth,
                                  timeout=timeout, follow_redirects=False, transport=transport)
        self._plain: httpx.Client | None = None  # for presigned URLs: never our credentials

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()
        if self._plain is not None:
            self._plain.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- jobs --------------------------------------------------------------------------
    def submit(
        self, service: str, input: Mapping[str, Any] | None = None, *,  # noqa: A002
        variables: Mapping[str, Any] | None = None, content: Content | None = None,
        content_type: str | None = None, run_id: str | None = None, callback_url: str | None = None,
        log_level: int | None = None, chain: builtins.list[Mapping[str, Any]] | None = None,
        wait: int | None = None,
    ) -> Job:
        """Submit a job and return it (status `queued`, or finished with `wait=`).

        With `content=` (bytes, text, a binary file or a path) the body is uploaded raw to
        POST /v1/services/{service}/jobs, `variables` travel as query parameters and
        `content_type` (guessed from a path's name, else application/octet-stream) is its
        media type. `wait=N` asks the server to answer when the job ends within N seconds
        (`Prefer: respond-async, wait=N`); the job may still come back unfinished.
        `job.replayed` is true when `run_id` named an existing job.
        """
        headers: dict[str, str] = {}
        timeout = self.timeout
        if wait is not None:
            wait = max(0, int(wait))
            headers["Prefer"] = f"respond-async, wait={wait}"
            timeout = max(timeout, min(wait, MAX_PREFER_WAIT) + 15.0)
        if content is None:
            body: dict[str, Any] = {"service": service}
            if input is not None:
                body["input"] = dict(input)
            if variables:
                body["variables"] = {k: _text(v) for k, v in variables.items()}
            if run_id is not None:
                body["runId"] = run_id
            if callback_url is not None:
                body["callbackUrl"] = callback_url
            if log_level is not None:
                body["logLevel"] = log_level
            if chain:
                body["chain"] = [dict(step) for step in chain]
            resp = self._request("POST", "v1/jobs", json=body, headers=headers, timeout=timeout,
                                 expect=(200, 202))
        else:
            if input is not None or chain:
                raise ValueError("content= uploads a document: it cannot be combined with input= "
                                 "or chain=")
            params: dict[str, str] = {}
            for name, value in (variables or {}).items():
                if name in RESERVED_QUERY:
                    raise ValueError(f"variable {name!r} is a reserved query parameter; use "
                                     "the keyword argument")
                params[name] = _text(value)
            if run_id is not None:
                params["runId"] = run_id
            if callback_url is not None:
                params["callbackUrl"] = callback_url
            if log_level is not None:
                params["logLevel"] = str(log_level)
            data, guessed = _read_content(content)
            headers["Content-Type"] = content_type or guessed or "application/octet-stream"
            resp = self._request("POST", f"v1/services/{_seg(service)}/jobs", params=params,
                                 content=data, headers=headers, timeout=timeout, expect=(200, 202))
        return self._job(resp)

    def get(self, job_id: str | Job) -> Job:
        return self._job(self._request("GET", f"v1/jobs/{_id(job_id)}"))

    def wait(self, job: str | Job, timeout: float | None = None,
             on_progress: Callable[[Job], None] | None = None) -> Job:
        """Poll a job until it is finished, honouring the server's `Retry-After`.

        `on_progress(job)` is called whenever the status, progress or attempt differs from
        the previous poll. A 429/503 while polling only delays the next poll. Raises
        `WaitTimeout` (its `.job` is the last state seen) after `timeout` seconds.
        """
        current = job if isinstance(job, Job) else self.get(job)
        deadline = None if timeout is None else _monotonic() + timeout
        last = (current.status, current.progress, current.attempts)
        while not current.finished:
            delay = current.retry_after if current.retry_after is not None else self.poll_interval
            delay = max(MIN_POLL_SECONDS, delay)
            if deadline is not None:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    raise WaitTimeout(current, timeout or 0)
                delay = min(delay, remaining)
            _sleep(delay)
            try:
                fresh = self.get(current.job_id)
            except (RateLimited, Unavailable) as busy:
                current.retry_after = busy.retry_after or max(delay * 2, self.poll_interval)
                continue
            current = fresh
            state = (current.status, current.progress, current.attempts)
            if state != last:
                last = state
                if on_progress is not None:
                    on_progress(current)
        return current

    def cancel(self, job_id: str | Job) -> Job:
        """Cancel a queued job (at once) or a running one (it stops); 409 when finished."""
        return self._job(self._request("POST", f"v1/jobs/{_id(job_id)}/cancel", expect=(200, 202)))

    def delete(self, job_id: str | Job) -> None:
        """Delete a finished job with its result, log and deliveries (409 when not finished)."""
        self._request("DELETE", f"v1/jobs/{_id(job_id)}", expect=(204, 200))

    def download_result(self, job_id: str | Job,
                        path: str | os.PathLike[str] | None = None) -> bytes | Path:
        """The job's result: written to `path` (returned as a Path) or returned as bytes.

        Follows the API's 303 to the presigned URL without sending the API credentials.
        """
        resp = self._request("GET", f"v1/jobs/{_id(job_id)}/result", expect=(303,))
        return self._fetch(_location(resp, self.url), path)

    def log(self, job_id: str | Job) -> str:
        """The job's log text (empty when there is none)."""
        resp = self._request("GET", f"v1/jobs/{_id(job_id)}/log", expect=(200, 303),
                             headers={"Accept": "text/plain, application/json"})
        if resp.status_code == 303:
            data = self._fetch(_location(resp, self.url), None)
            assert isinstance(data, bytes)
            return data.decode("utf-8", "replace")
        return resp.text

    def deliveries(self, job_id: str | Job) -> builtins.list[Delivery]:
        """Every webhook attempt for the job, oldest first."""
        body = self._json(self._request("GET", f"v1/jobs/{_id(job_id)}/deliveries"))
        return [Delivery.from_dict(d) for d in body.get("deliveries") or []]

    def redeliver(self, job_id: str | Job) -> Job:
        """Send the job's webhook again now."""
        return self._job(self._request("POST", f"v1/jobs/{_id(job_id)}/deliveries", expect=(202, 200)))

    def services(self) -> builtins.list[Service]:
        body = self._json(self._request("GET", "v1/services"))
        return [Service.from_dict(s) for s in body.get("services") or []]

    def health(self) -> dict[str, Any]:
        return self._json(self._request("GET", "v1/health"))

    def list(self, status: str | None = None, service: str | None = None, *,
             limit: int | None = None, page_size: int | None = None) -> Iterator[Job]:
        """Jobs newest first, following `nextCursor` through every page.

        `limit` stops after that many jobs; `page_size` (1-100) is the size of each request.
        """
        size = page_size or (min(limit, 100) if limit else None)
        cursor: str | None = None
        seen = 0
        while True:
            params: dict[str, str] = {}
            if status:
                params["status"] = status
            if service:
                params["service"] = service
            if size:
                params["limit"] = str(size)
            if cursor:
                params["cursor"] = cursor
            body = self._json(self._request("GET", "v1/jobs", params=params))
            for item in body.get("jobs") or []:
                yield Job.from_dict(item, self)
                seen += 1
                if limit is not None and seen >= limit:
                    return
            cursor = body.get("nextCursor")
            if not cursor:
                return

    # -- plumbing ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,),
                 **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"no answer from {self.url} in time ({type(exc).__name__})") from exc
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            raise ConnectionFailed(f"cannot reach {self.url}: {_reason(exc)}") from exc
        if resp.status_code in expect:
            return resp
        raise _error(resp)

    def _json(self, resp: httpx.Response) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise JobgateError(resp.status_code, "invalid_response",
                               f"expected a JSON object from {resp.request.url.path}, got "
                               f"{resp.headers.get('content-type') or 'no content type'}")
        return body

    def _job(self, resp: httpx.Response) -> Job:
        body = self._json(resp)
        if "jobId" not in body:
            raise JobgateError(resp.status_code, "invalid_response", "the answer is not a job")
        return Job.from_dict(body, self,
                             replayed=resp.headers.get("idempotent-replayed", "").lower() == "true",
                             retry_after=parse_retry_after(resp.headers.get("retry-after")))

    def _fetch(self, url: str, path: str | os.PathLike[str] | None) -> bytes | Path:
        """GET a presigned URL (no credentials), to a file or into memory."""
        if self._plain is None:
            self._plain = httpx.Client(timeout=max(self.timeout, 60.0), follow_redirects=True,
                                       transport=self._transport,
                                       headers={"User-Agent": f"jobgate-python/{__version__}"})
        try:
            with self._plain.stream("GET", url) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise JobgateError(resp.status_code, "download_failed",
                                       f"the result URL answered HTTP {resp.status_code}: "
                                       f"{' '.join(resp.text.split())[:200]}")
                if path is None:
                    return resp.read()
                target = Path(path)
                part = target.with_name(target.name + ".part")
                try:
                    with part.open("wb") as out:
                        for chunk in resp.iter_bytes(CHUNK):
                            out.write(chunk)
                    part.replace(target)
                finally:
                    part.unlink(missing_ok=True)
                return target
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"the download timed out ({type(exc).__name__})") from exc
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            raise ConnectionFailed(f"cannot download the result: {_reason(exc)}") from exc


# -- helpers -------------------------------------------------------------------------------

def _id(job: str | Job) -> str:
    return _seg(job.job_id if isinstance(job, Job) else str(job))


def _seg(value: str) -> str:
    """One path segment, whatever it holds (an ID can never reach another route)."""
    return quote(value, safe="") or "%20"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_content(content: Content) -> tuple[bytes, str | None]:
    if isinstance(content, bytes):
        return content, None
    if isinstance(content, str):
        return content.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(content, os.PathLike):
        p = Path(content)
        return p.read_bytes(), mimetypes.guess_type(p.name)[0]
    data = content.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data, None


def _location(resp: httpx.Response, base: str) -> str:
    location: str | None = resp.headers.get("location")
    if not location:
        raise JobgateError(resp.status_code, "invalid_response", "a redirect without Location")
    return urljoin(base + "/", location)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _error(resp: httpx.Response) -> JobgateError:
    resp.read()
    body: Any
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return error_for(resp.status_code, body, dict(resp.headers.items()))
