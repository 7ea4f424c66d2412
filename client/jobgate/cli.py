"""`jobgate`: the command line client.

Exit codes (documented in `jobgate --help`, client/README.md and the README):
0 success, 1 an API or connection error, 2 a usage error, 3 the job failed or was
canceled (under --wait / `jobgate wait`), 4 --timeout ran out before the job ended,
130 interrupted. Errors are one line on stderr; with --json, one JSON object there.

`jobgate worker`: 0 after a graceful stop (SIGTERM or SIGINT: no more claims, running jobs
finished or failed within --grace), 1 when the API refused the worker key or its services,
2 a usage error (no URL or key, a --handler that does not import).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .client import Client
from .errors import ConnectionFailed, JobgateError, ValidationFailed, WaitTimeout
from .models import Job

PROG = "jobgate"
OK, API_ERROR, USAGE, JOB_FAILED, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 4, 130
RECONNECT_SECONDS = 120.0  # --wait keeps retrying a lost connection this long by default
EXIT_CODES = """exit codes:
  0  success
  1  an API or connection error
  2  a usage error
  3  the job failed or was canceled (--wait, wait)
  4  --timeout ran out before the job ended (it goes on: `jobgate wait ID` resumes)
  130  interrupted (Ctrl-C)"""

_json_errors = False  # --json anywhere on the command line: errors are JSON too


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2."""


class JobEnded(Exception):
    """The followed job failed or was canceled: exit code 3."""

    def __init__(self, job: Job):
        reason = f": {job.error.code}: {job.error.message}" if job.error else ""
        super().__init__(f"job {job.job_id} {job.status}{reason}")
        self.job = job


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as JSON under --json (still exit code 2)."""

    def error(self, message: str) -> Any:
        if _json_errors:
            sys.exit(fail(message, USAGE, code="usage_error"))
        super().error(message)


# -- entry point ---------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    global _json_errors
    argv = list(sys.argv[1:] if argv is None else argv)
    _json_errors = "--json" in argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        if _json_errors:
            return fail("no command given", USAGE, code="usage_error")
        parser.print_help(sys.stderr)
        return USAGE
    if args.command == "worker":
        return run_worker(args)
    try:
        with make_client(args) as client:
            return int(args.run(client, args) or 0)
    except UsageError as exc:
        return fail(f"{exc}", USAGE, code="usage_error")
    except JobEnded as exc:
        return fail(str(exc), JOB_FAILED, code=f"job_{exc.job.status}", job_id=exc.job.job_id)
    except WaitTimeout as exc:
        return fail(f"{exc} (it goes on: `{PROG} wait {exc.job.job_id}` resumes)", TIMED_OUT,
                    error=exc, job_id=exc.job.job_id)
    except JobgateError as exc:
        return fail(str(exc), API_ERROR, error=exc)
    except KeyboardInterrupt:
        return fail("interrupted", INTERRUPTED, code="interrupted")
    except BrokenPipeError:
        # The reader went away (`jobgate list | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except OSError as exc:  # writing --output, reading --input
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc),
                    API_ERROR, code="os_error")


def fail(message: str, exit_code: int, *, code: str | None = None,
         error: JobgateError | None = None, job_id: str | None = None) -> int:
    """One line on stderr: `jobgate: error: ...`, or under --json one JSON object
    `{"error": {"code", "message", "status", "details", "jobId", "exitCode"}}`."""
    text = " ".join(message.split())
    if not _json_errors:
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return exit_code
    body: dict[str, Any] = {"code": code or (error.code if error else "error"), "message": text}
    if error is not None:
        body.update(status=error.status, details=error.details)
    if job_id:
        body["jobId"] = job_id
    body["exitCode"] = exit_code
    print(json.dumps({"error": body}, ensure_ascii=False), file=sys.stderr, flush=True)
    return exit_code


def make_client(args: argparse.Namespace) -> Client:
    url = getattr(args, "url", None) or os.environ.get("JOBGATE_URL")
    key = getattr(args, "api_key", None) or os.environ.get("JOBGATE_API_KEY")
    if not url:
        raise UsageError("no API URL: pass --url or set JOBGATE_URL")
    if not key:
        raise UsageError("no API key: pass --api-key or set JOBGATE_API_KEY")
    try:
        return Client(url, key, tenant=getattr(args, "tenant", None) or None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- arguments -----------------------------------------------------------------------------

EXAMPLES = {
    "submit": """  jobgate submit echo --data '{"hello": "world"}'
  jobgate submit sleep --data '{"seconds": 5, "steps": 5}' --wait
  jobgate submit dataload --content people.csv --var MAX=1000 --wait -o stats.json
  jobgate submit echo --input job.json --run-id order-42 --callback https://me.example/hook
  jobgate submit echo --data '{}' --json | jq -r .jobId""",
    "wait": """  jobgate wait 01JD5Z3K8Q2V7XG4M9N6R1T0WA
  jobgate wait 01JD5Z3K8Q2V7XG4M9N6R1T0WA --timeout 600 -o result.json
  jobgate wait 01JD5Z3K8Q2V7XG4M9N6R1T0WA --quiet --json | jq .status""",
    "status": """  jobgate status 01JD5Z3K8Q2V7XG4M9N6R1T0WA
  jobgate status 01JD5Z3K8Q2V7XG4M9N6R1T0WA --json | jq .progress""",
    "list": """  jobgate list
  jobgate list --status failed --service dataload --limit 50
  jobgate list --all --json | jq -r '.[].jobId'""",
    "cancel": "  jobgate cancel 01JD5Z3K8Q2V7XG4M9N6R1T0WA",
    "delete": "  jobgate delete 01JD5Z3K8Q2V7XG4M9N6R1T0WA",
    "result": """  jobgate result 01JD5Z3K8Q2V7XG4M9N6R1T0WA
  jobgate result 01JD5Z3K8Q2V7XG4M9N6R1T0WA -o result.json""",
    "log": "  jobgate log 01JD5Z3K8Q2V7XG4M9N6R1T0WA",
    "services": """  jobgate services
  jobgate services --json | jq '.[] | {name, inputSchema}'""",
    "deliveries": "  jobgate deliveries 01JD5Z3K8Q2V7XG4M9N6R1T0WA",
    "redeliver": "  jobgate redeliver 01JD5Z3K8Q2V7XG4M9N6R1T0WA",
    "worker": """  jobgate worker --service report --handler examples.worker.report:report
  jobgate worker --service a --service b --handler mod:handle_a --handler mod:handle_b""",
}


def epilog(name: str) -> str:
    return f"examples:\n{EXAMPLES[name]}\n\n{EXIT_CODES}"


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help="API base URL (default: $JOBGATE_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS,
                        help="API key (default: $JOBGATE_API_KEY)")
    common.add_argument("--tenant", default=argparse.SUPPRESS,
                        help="use HTTP Basic <tenant>:<api key> instead of a Bearer token")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable JSON output")

    parser = Parser(
        prog=PROG, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Submit and follow Jobgate jobs. Reads JOBGATE_URL and JOBGATE_API_KEY.",
        epilog="examples:\n  jobgate services\n  jobgate submit sleep --data '{\"seconds\": 5}' "
               "--wait\n  jobgate wait ID\n  jobgate COMMAND --help   (examples for each)\n\n"
               + EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Callable[[Client, argparse.Namespace], int], help_: str
                ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_,
                           epilog=epilog(name), formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(run=run)
        return p

    p = command("submit", cmd_submit, "submit a job (and with --wait, follow it and print its result)")
    p.add_argument("service", help="the service to run, e.g. echo, sleep, dataload")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--input", metavar="FILE", help="the input: a JSON file ('-' for stdin)")
    body.add_argument("--data", metavar="JSON", help="the input as a JSON object on the command line")
    body.add_argument("--content", metavar="FILE",
                      help="upload this document as the service's content ('-' for stdin)")
    p.add_argument("--content-type", metavar="TYPE",
                   help="media type of --content (default: guessed from its name)")
    p.add_argument("--var", action="append", default=[], type=key_value, metavar="K=V",
                   help="a job variable (repeatable)")
    p.add_argument("--run-id", help="idempotency key: the same run ID never starts a second job")
    p.add_argument("--callback", metavar="URL", help="webhook URL called when the job ends")
    p.add_argument("--log-level", type=int, choices=range(4), metavar="N",
                   help="0 none, 1 low (default), 2 medium, 3 high")
    p.add_argument("--wait", action="store_true",
                   help="show progress until the job ends, then print its result")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this")
    p.add_argument("--output", "-o", metavar="FILE", help="with --wait: write the result here")
    p.add_argument("--quiet", "-q", action="store_true", help="with --wait: no progress display")
    p.add_argument("--reconnect", type=non_negative_float, default=RECONNECT_SECONDS,
                   metavar="SECONDS", help="with --wait: keep retrying a lost connection this "
                   f"long (default {RECONNECT_SECONDS:g})")

    p = command("wait", cmd_wait, "follow a job until it ends, then print its result")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this")
    p.add_argument("--output", "-o", metavar="FILE", help="write the result here")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.add_argument("--reconnect", type=non_negative_float, default=RECONNECT_SECONDS,
                   metavar="SECONDS",
                   help=f"keep retrying a lost connection this long (default {RECONNECT_SECONDS:g})")

    p = command("status", cmd_status, "show a job")
    p.add_argument("job_id", metavar="ID")

    p = command("list", cmd_list, "list jobs, newest first")
    p.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "canceled"])
    p.add_argument("--service")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N",
                   help="at most N jobs (default 20)")
    p.add_argument("--all", action="store_true", help="every job (follows all pages)")

    p = command("cancel", cmd_cancel, "cancel a queued or running job")
    p.add_argument("job_id", metavar="ID")

    p = command("delete", cmd_delete, "delete a finished job, its result and log")
    p.add_argument("job_id", metavar="ID")

    p = command("result", cmd_result, "download a job's result (to stdout or --output)")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--output", "-o", metavar="FILE", help="write the result here")

    p = command("log", cmd_log, "print a job's log")
    p.add_argument("job_id", metavar="ID")

    command("services", cmd_services, "list the services")

    p = command("deliveries", cmd_deliveries, "list a job's webhook attempts")
    p.add_argument("job_id", metavar="ID")

    p = command("redeliver", cmd_redeliver, "send a job's webhook again")
    p.add_argument("job_id", metavar="ID")

    help_ = "claim and run jobs of worker services (runsOn: worker) until SIGTERM"
    p = sub.add_parser("worker", help=help_, description=help_ + ". Reads JOBGATE_URL and "
                       "JOBGATE_WORKER_KEY.", epilog="examples:\n" + EXAMPLES["worker"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="API base URL (default: $JOBGATE_URL)")
    p.add_argument("--worker-key", help="worker key, jgw_... (default: $JOBGATE_WORKER_KEY)")
    p.add_argument("--service", action="append", required=True, metavar="NAME",
                   help="a service to claim jobs of (repeatable)")
    p.add_argument("--handler", action="append", required=True, metavar="MODULE:FUNCTION",
                   help="the handler(input, ctx): one for every --service, or one per --service "
                        "in the same order; MODULE is imported from the current directory too")
    p.add_argument("--concurrency", type=positive_int, default=4, metavar="N",
                   help="jobs run at once (default 4)")
    p.add_argument("--grace", type=non_negative_float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, how long running jobs may go on before they are failed "
                        "(retryable) (default 30)")
    p.add_argument("--worker-id", help="this worker's name in logs and results (default host-pid)")
    return parser


def key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def non_negative_float(text: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def as_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


# -- commands ------------------------------------------------------------------------------

def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    if args.output and not args.wait:
        raise UsageError("--output needs --wait (or use `jobgate result ID --output FILE`)")
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout needs --wait")
    if args.content_type and not args.content:
        raise UsageError("--content-type needs --content")
    variables = dict(args.var)
    kwargs: dict[str, Any] = dict(variables=variables or None, run_id=args.run_id,
                                  callback_url=args.callback, log_level=args.log_level)
    if args.content:
        data = read_bytes(args.content)
        content_type = args.content_type or (
            mimetypes.guess_type(args.content)[0] if args.content != "-" else None)
        job = client.submit(args.service, content=data, content_type=content_type, **kwargs)
    else:
        try:
            job = client.submit(args.service, read_input(args), **kwargs)
        except ValidationFailed as exc:
            if any((d.get("loc") or [None])[0] == "content" for d in exc.details):
                exc.message += f"; this service takes a document: `{PROG} submit " \
                               f"{args.service} --content FILE`"
            raise
    if job.replayed:
        print(f"{PROG}: run ID {args.run_id} was used before: this is its job", file=sys.stderr)
    if not args.wait:
        if as_json(args):
            emit_json(job.to_dict())
        else:
            print(job.job_id)
        return 0
    return finish(client, job, args)


def cmd_wait(client: Client, args: argparse.Namespace) -> int:
    return finish(client, client.get(args.job_id), args)


class ConnectionLost(Exception):
    """The API stayed unreachable for the whole --reconnect window while following a job."""

    def __init__(self, job: Job, seconds: float, reason: JobgateError):
        super().__init__(f"lost the connection to the API for {seconds:.0f}s ({reason.message}); "
                         f"job {job.job_id} goes on: `{PROG} wait {job.job_id}` resumes")
        self.job = job


def finish(client: Client, job: Job, args: argparse.Namespace) -> int:
    """Follow the job to its end, then print its result (or the job, with --json)."""
    try:
        done = follow(job, args.timeout, quiet=args.quiet, reconnect=args.reconnect)
    except KeyboardInterrupt:
        return fail(f"interrupted; job {job.job_id} goes on (`{PROG} cancel {job.job_id}` stops "
                    f"it, `{PROG} wait {job.job_id}` resumes)", INTERRUPTED, code="interrupted",
                    job_id=job.job_id)
    except ConnectionLost as exc:
        return fail(str(exc), API_ERROR, code="connection_error", job_id=exc.job.job_id)
    ok = done.status == "succeeded"
    if ok and (args.output or not as_json(args)):
        write_result(client, done, args.output)
    if as_json(args):
        emit_json(done.to_dict())
    if not ok:
        raise JobEnded(done)
    return OK


def wait_through_drops(job: Job, timeout: float | None, reconnect: float,
                       on_progress: Callable[[Job], None] | None = None,
                       on_drop: Callable[[Job, str], None] | None = None) -> Job:
    """job.wait(), retrying a lost connection with backoff for up to `reconnect` seconds in
    a row (then ConnectionLost); `timeout` covers the whole wait, drops included."""
    from .backoff import retry_delay

    deadline = None if timeout is None else time.monotonic() + timeout
    last = job
    lost_since: float | None = None
    failures = 0

    def seen(j: Job) -> None:
        nonlocal last
        last = j
        if on_progress is not None:
            on_progress(j)

    while True:
        try:
            if failures:  # one plain read first, so a success ends the outage at once
                fresh = last.refresh()
                failures, lost_since = 0, None
                if (fresh.status, fresh.progress, fresh.attempts) != \
                        (last.status, last.progress, last.attempts):
                    seen(fresh)
                else:
                    last = fresh
                if on_drop is not None:
                    on_drop(last, "")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0 and not last.finished:
                raise WaitTimeout(last, timeout or 0)
            return last.wait(remaining, on_progress=seen)
        except ConnectionFailed as exc:
            now = time.monotonic()
            lost_since = now if lost_since is None else lost_since
            failures += 1
            left = reconnect - (now - lost_since)
            if left <= 0:
                raise ConnectionLost(last, now - lost_since, exc) from None
            delay = min(retry_delay(failures, base=1.0, cap=15.0), left)
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - now))
            if on_drop is not None:
                on_drop(last, f"connection lost ({exc.message}); retrying in {delay:.0f} s")
            time.sleep(delay)


def follow(job: Job, timeout: float | None, quiet: bool = False,
           reconnect: float = RECONNECT_SECONDS) -> Job:
    """Wait for the job with a live progress bar on a terminal (plain lines otherwise)."""
    from rich.console import Console

    console = Console(stderr=True)
    if quiet:
        return wait_through_drops(job, timeout, reconnect)
    if not console.is_terminal:
        def line(j: Job) -> None:
            print(f"{j.job_id} {describe(j)}", file=sys.stderr, flush=True)

        def dropped(j: Job, note: str) -> None:
            print(f"{j.job_id} {note or 'connection restored'}", file=sys.stderr, flush=True)

        line(job)
        return wait_through_drops(job, timeout, reconnect, on_progress=line, on_drop=dropped)

    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class OutcomeBar(BarColumn):
        """The bar turns red when the job failed or was canceled (never a green 100 %)."""

        def render(self, task: Any) -> Any:
            bar = super().render(task)
            if task.fields.get("bad"):
                bar.complete_style = bar.finished_style = "red"
            return bar

    class NoteColumn(ProgressColumn):
        """The given note (markup), else the job's own, rendered at each refresh: a
        retry's "retrying in 4 s" counts down between polls."""

        def render(self, task: Any) -> Any:
            note = task.fields.get("note")
            if note is None:
                note = escape(progress_note(task.fields["job"]))
            return Text.from_markup(note)

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                   TextColumn("{task.fields[status]}"), OutcomeBar(), TaskProgressColumn(),
                   TimeElapsedColumn(), NoteColumn(), console=console, transient=False)
    styles = {"succeeded": "bold green", "failed": "bold red", "canceled": "bold red",
              "running": "bold blue", "queued": "bold yellow", "retrying": "bold yellow"}

    def update(j: Job, note: str | None = None) -> None:
        status = "retrying" if retrying(j) else j.status
        bar.update(task, completed=j.percent or 0.0, bad=j.status in ("failed", "canceled"),
                   status=f"[{styles.get(status, 'bold')}]{status:<9}[/]", note=note, job=j)

    with bar:
        task = bar.add_task(job.job_id, total=100.0, completed=0, status=job.status, note=None,
                            job=job, bad=False)
        update(job)
        done = wait_through_drops(job, timeout, reconnect, on_progress=update,
                                  on_drop=lambda j, note: update(j, escape(note) or None))
        if done.status == "succeeded":
            bar.update(task, completed=100.0)
        update(done)
        if done.error and not done.succeeded:
            update(done, f"[red]{escape(done.error.code)}: {escape(done.error.message)}[/]")
    return done


def retrying(job: Job) -> bool:
    """Back in the queue after a failed attempt (the server will try again)."""
    return job.status == "queued" and job.attempts > 0 and job.error is not None


def attempt_note(job: Job, now: float | None = None) -> str:
    """`attempt 2/3, retrying in 4 s (attempt 1: handler_error)` between attempts,
    `attempt 2/3` while a later attempt runs; '' for a first attempt. The total and the
    delay appear when the job resource carries them (`maxAttempts`, `retryAt`); `now`
    (epoch seconds, default the wall clock) is what the delay counts from."""
    of = f"/{job.max_attempts}" if job.max_attempts else ""
    if retrying(job):
        assert job.error is not None
        when = _seconds_until(job.retry_at, time.time() if now is None else now)
        delay = f" in {when:.0f} s" if when is not None else ""
        return f"attempt {job.attempts + 1}{of}, retrying{delay} " \
               f"(attempt {job.attempts}: {job.error.code})"
    if job.status == "running" and job.attempts > 1:
        return f"attempt {job.attempts}{of}"
    return ""


def _seconds_until(stamp: str | None, now: float) -> float | None:
    from datetime import datetime

    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, when.timestamp() - now)


def progress_note(job: Job, now: float | None = None) -> str:
    message = (job.progress.message or "") if job.progress else ""
    return " · ".join(x for x in (attempt_note(job, now), message) if x)


def describe(job: Job, now: float | None = None) -> str:
    if retrying(job):
        return f"retrying {attempt_note(job, now)}"
    text = job.status
    if job.progress:
        text += f" {job.progress.percent:.0f}%"
    note = progress_note(job, now)
    if note:
        text += f" {note}"
    if job.error and job.status in ("failed", "canceled"):
        text += f" ({job.error.code}: {job.error.message})"
    return text


def write_result(client: Client, job: Job, output: str | None) -> None:
    if output and output != "-":
        path = client.download_result(job, output)
        print(f"{PROG}: wrote {wrote(path, job)}", file=sys.stderr)
        return
    data = client.download_result(job)
    assert isinstance(data, bytes)
    write_stdout(data)


def wrote(path: Any, job: Job | None = None) -> str:
    """`1234 bytes (application/json) to out.json`: what a download left on disk."""
    size = Path(path).stat().st_size
    kind = f" ({job.result_type})" if job is not None and job.result_type else ""
    return f"{size} bytes{kind} to {path}"


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.get(args.job_id)
    if as_json(args):
        emit_json(job.to_dict())
        return 0
    rows: list[tuple[str, Any]] = [
        ("job", job.job_id), ("service", job.service), ("status", describe(job)),
        ("run id", job.run_id), ("created", job.created_at), ("started", job.started_at),
        ("completed", job.completed_at),
        ("duration", f"{job.duration:g}s" if job.duration is not None else None),
        ("attempts", job.attempts),
        ("error", f"{job.error.code}: {job.error.message}" if job.error else None),
        ("result", f"{job.result_type} ({job.result_size} bytes), until {job.valid_until}"
         if job.result_type else None),
        ("previous", job.previous), ("next", job.next),
        ("callback", f"{job.callback.url} [{job.callback.state}, {job.callback.attempts} attempts]"
         if job.callback else None),
        ("expires", job.expires_at),
    ]
    rows += [(f"var {k}", v) for k, v in sorted(job.variables.items())]
    shown = [(k, str(v)) for k, v in rows if v not in (None, "")]
    width = max(len(k) for k, _ in shown)
    for k, v in shown:
        print(f"{k:<{width}}  {v}")
    return 0


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    limit = None if args.all else args.limit
    jobs = list(client.list(status=args.status, service=args.service, limit=limit,
                            page_size=100 if args.all else None))
    if as_json(args):
        emit_json([j.to_dict() for j in jobs])
        return 0
    table(["JOB", "SERVICE", "STATUS", "PROGRESS", "CREATED"],
          [[j.job_id, j.service, j.status, f"{j.percent:.0f}%" if j.percent is not None else "",
            j.created_at] for j in jobs])
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.job_id)
    if as_json(args):
        emit_json(job.to_dict())
    else:
        print(f"{job.job_id} {job.status}")
    return 0


def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    client.delete(args.job_id)
    if as_json(args):
        emit_json({"jobId": args.job_id, "deleted": True})
    else:
        print(f"{args.job_id} deleted")
    return 0


def cmd_result(client: Client, args: argparse.Namespace) -> int:
    if args.output and args.output != "-":
        path = client.download_result(args.job_id, args.output)
        if as_json(args):
            size = Path(args.output).stat().st_size
            emit_json({"jobId": args.job_id, "path": str(path), "bytes": size})
        else:
            print(f"{PROG}: wrote {wrote(path)}", file=sys.stderr)
        return 0
    data = client.download_result(args.job_id)
    assert isinstance(data, bytes)
    write_stdout(data)  # the result itself is the machine output, --json or not
    return 0


def cmd_log(client: Client, args: argparse.Namespace) -> int:
    text = client.log(args.job_id)
    if as_json(args):
        emit_json({"jobId": args.job_id, "log": text})
    else:
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return 0


def cmd_services(client: Client, args: argparse.Namespace) -> int:
    services = client.services()
    if as_json(args):
        emit_json([s.raw for s in services])
        return 0
    table(["SERVICE", "ENABLED", "DESCRIPTION"],
          [[s.name, "yes" if s.enabled else "no", s.description] for s in services])
    return 0


def cmd_deliveries(client: Client, args: argparse.Namespace) -> int:
    deliveries = client.deliveries(args.job_id)
    if as_json(args):
        emit_json([d.raw for d in deliveries])
        return 0
    if not deliveries:
        print(f"{PROG}: no webhook attempts for {args.job_id}", file=sys.stderr)
        return 0
    table(["ATTEMPT", "AT", "STATUS", "DURATION", "ERROR"],
          [[str(d.attempt), d.at, str(d.status_code) if d.status_code is not None else "-",
            f"{d.duration_ms} ms", d.error or ""] for d in deliveries])
    return 0


def cmd_redeliver(client: Client, args: argparse.Namespace) -> int:
    job = client.redeliver(args.job_id)
    if as_json(args):
        emit_json(job.to_dict())
    else:
        print(f"{job.job_id} webhook sent again")
    return 0


# -- worker ----------------------------------------------------------------------------------

def run_worker(args: argparse.Namespace) -> int:
    """`jobgate worker`: one line per job start and end on stderr, until SIGTERM/SIGINT."""
    import logging

    from .worker import Worker, WorkerStopped

    try:
        handlers = load_handlers(args.service, args.handler)
        url = args.url or os.environ.get("JOBGATE_URL")
        key = args.worker_key or os.environ.get("JOBGATE_WORKER_KEY")
        if not url:
            raise UsageError("no API URL: pass --url or set JOBGATE_URL")
        if not key:
            raise UsageError("no worker key: pass --worker-key or set JOBGATE_WORKER_KEY")
        try:
            worker = Worker(url, key, handlers, concurrency=args.concurrency, grace=args.grace,
                            worker_id=args.worker_id)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    except UsageError as exc:
        return fail(str(exc), 2)
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(logging.Formatter(f"%(asctime)s {PROG} worker: %(message)s"))
    logger = logging.getLogger("jobgate.worker")
    logger.addHandler(out)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        worker.run()
    except WorkerStopped as exc:
        return fail(str(exc), 1)
    finally:
        logger.removeHandler(out)
    return 0


def load_handlers(services: list[str], specs: list[str]) -> dict[str, Callable[..., Any]]:
    """{service: handler} from --service and --handler MODULE:FUNCTION (imported from the
    current directory too, as `python -m` would)."""
    import importlib

    if len(specs) not in (1, len(services)):
        raise UsageError("give one --handler for all services, or one per --service")
    if len(set(services)) != len(services):
        raise UsageError("a --service is repeated")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    handlers: dict[str, Callable[..., Any]] = {}
    for service, spec in zip(services, specs * len(services) if len(specs) == 1 else specs,
                             strict=False):
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            raise UsageError(f"--handler {spec!r}: expected MODULE:FUNCTION")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001  (any import failure is a usage error here)
            raise UsageError(f"--handler {spec!r}: cannot import {module_name}: "
                             f"{type(exc).__name__}: {exc}") from None
        func: Any = module
        for part in attr.split("."):
            func = getattr(func, part, None)
        if not callable(func):
            raise UsageError(f"--handler {spec!r}: {module_name} has no callable {attr}")
        handlers[service] = func
    return handlers


# -- input and output ----------------------------------------------------------------------

def read_bytes(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None


def read_input(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.data is not None:
        text, where = args.data, "--data"
    elif args.input is not None:
        text, where = read_bytes(args.input).decode("utf-8", "replace"), args.input
    else:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a JSON object")
    return value


def write_stdout(data: bytes) -> None:
    """The bytes unchanged; a final newline only for a terminal, so the prompt stays apart."""
    sys.stdout.buffer.write(data)
    if data and not data.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
