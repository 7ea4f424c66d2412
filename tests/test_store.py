"""The DynamoDB job store on moto, used directly: round trips, the conditional writes the
worker's safety rests on (claim/lease, finish, cancel, release, delete), listings through the
GSIs with bounded reads, expiry, and runId claims."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.ids import new_job_id
from chalicelib.jobs import Job
from chalicelib.store import Conflict, RunIdTaken

TENANT = "acme"
DAY = 86_400
T0 = time.time()


def make_job(now: float = T0, *, tenant: str = TENANT, service: str = "echo", ttl: float = 30 * DAY,
             **fields: Any) -> Job:
    return Job(tenant=tenant, job_id=fields.pop("job_id", None) or new_job_id(now), service=service,
               status=fields.pop("status", "queued"), created_at=now, expires_at=now + ttl, **fields)


def created(env: Any, now: float = T0, **fields: Any) -> Job:
    job = make_job(now, **fields)
    env.rt.store.create(job)
    return job


def cancel(store: Any, tenant: str, job_id: str, now: float) -> Job:
    """A plain cancel (no callback values to write with it)."""
    return store.cancel(tenant, job_id, now, {})


@dataclasses.dataclass
class Reads:
    queries: int = 0
    scanned: int = 0
    returned: int = 0
    fetched: int = 0  # jobs read by key (BatchGetItem) for a page

    @property
    def items(self) -> int:
        """Every item a listing read: index entries DynamoDB evaluated, then the page's jobs."""
        return self.scanned + self.fetched


@contextlib.contextmanager
def counting_queries(env: Any) -> Iterator[Reads]:
    """Count Query calls and the items DynamoDB evaluated for them (what a query costs)."""
    reads = Reads()

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        reads.queries += 1
        reads.scanned += parsed.get("ScannedCount", 0)
        reads.returned += parsed.get("Count", 0)

    def batch(parsed: dict[str, Any], **_: Any) -> None:
        reads.fetched += sum(len(v) for v in parsed.get("Responses", {}).values())

    events = env.rt.clients.dynamodb.meta.events
    events.register("after-call.dynamodb.Query", hook, unique_id="test-store-count")
    events.register("after-call.dynamodb.BatchGetItem", batch, unique_id="test-store-batch")
    try:
        yield reads
    finally:
        events.unregister("after-call.dynamodb.Query", unique_id="test-store-count")
        events.unregister("after-call.dynamodb.BatchGetItem", unique_id="test-store-batch")


def walk(store: Any, now: float, limit: int, tenant: str = TENANT, **filters: Any) -> list[list[str]]:
    pages, after = [], None
    for _ in range(1000):
        page = store.list(tenant, now, status=filters.get("status"), service=filters.get("service"),
                          limit=limit, after=after)
        pages.append([j.job_id for j in page.jobs])
        after = page.last_job_id
        if after is None:
            return pages
    raise AssertionError("paging never ended")


# -- create / get --------------------------------------------------------------------------

def test_create_then_get_round_trips_every_field(env):
    job = make_job(
        T0 + 0.125, run_id="run-42", input={"a": [1, 2.5, None, True, {"b": "c"}], "e": "\u00e9\U0001f600"},
        variables={"MAX": "10"}, content_inline=b"\x00\x01binary\xff", content_type="text/csv",
        log_level=3, max_attempts=5, callback_url="https://example.com/hook?x=1",
        chain=[{"service": "echo", "input": {"x": 1}}], request_hash="ab" * 32,
    )
    env.rt.store.create(job)
    got = env.rt.store.get(TENANT, job.job_id, T0)
    assert got == job
    assert isinstance(got.content_inline, bytes) and got.input["a"][1] == 2.5


def test_get_is_none_for_unknown_other_tenant_and_expired_jobs(env):
    store = env.rt.store
    job = created(env, ttl=100)
    assert store.get(TENANT, new_job_id(T0), T0) is None
    assert store.get("bobco", job.job_id, T0) is None
    assert store.get(TENANT, job.job_id, T0 + 99.9) is not None
    assert store.get(TENANT, job.job_id, T0 + 100) is None  # TTL deletes late: reads filter
    assert store.get(TENANT, job.job_id, T0 + 10 * DAY) is None


def test_create_never_overwrites_an_existing_job(env):
    job = created(env, input={"v": 1})
    with pytest.raises(Conflict):
        env.rt.store.create(dataclasses.replace(job, input={"v": 2}, status="succeeded"))
    got = env.rt.store.get(TENANT, job.job_id, T0)
    assert got.input == {"v": 1} and got.status == "queued"


# -- claim / lease -------------------------------------------------------------------------

def test_claim_takes_a_lease_and_a_second_claim_conflicts_while_it_holds(env):
    store = env.rt.store
    job = created(env)
    claimed = store.claim(TENANT, job.job_id, "tok-1", 60, T0 + 1)
    assert claimed.status == "running" and claimed.lease_token == "tok-1"
    assert claimed.attempts == 1 and claimed.started_at == pytest.approx(T0 + 1)
    assert claimed.lease_until == pytest.approx(T0 + 61)
    with pytest.raises(Conflict) as info:
        store.claim(TENANT, job.job_id, "tok-2", 60, T0 + 30)
    assert info.value.job.lease_token == "tok-1" and info.value.job.status == "running"
    with pytest.raises(Conflict):
        store.claim(TENANT, job.job_id, "tok-2", 60, T0 + 61)  # the lease ends after leaseUntil
    again = store.get(TENANT, job.job_id, T0)
    assert again.lease_token == "tok-1" and again.attempts == 1


def test_a_lapsed_lease_is_claimed_again_counting_an_attempt(env):
    store = env.rt.store
    job = created(env)
    store.claim(TENANT, job.job_id, "tok-1", 60, T0)
    second = store.claim(TENANT, job.job_id, "tok-2", 60, T0 + 61)
    assert second.lease_token == "tok-2" and second.attempts == 2
    assert second.started_at == pytest.approx(T0)  # the first start is kept
    # the dead worker's token is worthless now
    with pytest.raises(Conflict):
        store.heartbeat(TENANT, job.job_id, "tok-1", {"progressPercent": 50.0})
    with pytest.raises(Conflict):
        store.finish(TENANT, job.job_id, "tok-1", "succeeded", {"resultKey": "stale"}, T0 + 62)
    done = store.finish(TENANT, job.job_id, "tok-2", "succeeded", {"resultKey": "fresh"}, T0 + 63)
    assert done.status == "succeeded" and done.result_key == "fresh"
    assert done.lease_token is None and done.lease_until is None


def test_claim_is_refused_once_attempts_reach_max_attempts(env):
    store = env.rt.store
    job = created(env, max_attempts=2)
    store.claim(TENANT, job.job_id, "a", 10, T0)
    store.claim(TENANT, job.job_id, "b", 10, T0 + 11)
    with pytest.raises(Conflict) as info:
        store.claim(TENANT, job.job_id, "c", 10, T0 + 22)
    assert info.value.job.attempts == 2 and info.value.job.lease_token == "b"
    # released back to the queue, the exhausted job still cannot be claimed
    store.release(TENANT, job.job_id, "b", "handler_error", "boom")
    with pytest.raises(Conflict):
        store.claim(TENANT, job.job_id, "d", 10, T0 + 23)
    assert store.get(TENANT, job.job_id, T0).attempts == 2


@pytest.mark.parametrize("state", ["succeeded", "failed", "canceled"])
def test_claim_of_a_finished_job_conflicts(env, state):
    job = created(env, status=state)
    with pytest.raises(Conflict) as info:
        env.rt.store.claim(TENANT, job.job_id, "tok", 60, T0)
    assert info.value.job.status == state


def test_claim_of_an_unknown_or_expired_job_conflicts_without_creating_anything(env):
    store = env.rt.store
    ghost = new_job_id(T0)
    with pytest.raises(Conflict) as info:
        store.claim(TENANT, ghost, "tok", 60, T0)
    assert info.value.job is None
    assert store.get(TENANT, ghost, T0) is None
    old = created(env, ttl=10)
    with pytest.raises(Conflict):
        store.claim(TENANT, old.job_id, "tok", 60, T0 + 10)
    with pytest.raises(Conflict):
        store.claim("bobco", old.job_id, "tok", 60, T0)  # another tenant's key is another item


def test_release_puts_the_job_back_and_the_next_claim_counts_on(env):
    store = env.rt.store
    job = created(env)
    store.claim(TENANT, job.job_id, "a", 60, T0)
    released = store.release(TENANT, job.job_id, "a", "handler_error", "ValueError: x")
    assert released.status == "queued" and released.lease_token is None
    assert released.error_code == "handler_error" and released.error_message == "ValueError: x"
    with pytest.raises(Conflict):
        store.release(TENANT, job.job_id, "a", "handler_error", "twice")
    again = store.claim(TENANT, job.job_id, "b", 60, T0 + 1)  # no need to wait for a lease
    assert again.attempts == 2 and again.lease_token == "b"


def test_heartbeat_writes_progress_only_for_the_lease_holder(env):
    store = env.rt.store
    job = created(env, service="sleep")
    with pytest.raises(Conflict):
        store.heartbeat(TENANT, job.job_id, "tok", {"progressPercent": 1.0})  # still queued
    store.claim(TENANT, job.job_id, "tok", 60, T0)
    beat = store.heartbeat(TENANT, job.job_id, "tok", {
        "progressPercent": 42.5, "progressMessage": "rows 42", "statusVars": {"STEP": "3"}})
    assert beat.progress_percent == 42.5 and beat.progress_message == "rows 42"
    assert beat.status_vars == {"STEP": "3"} and beat.status == "running"


# -- finish --------------------------------------------------------------------------------

def test_finish_with_a_stale_or_wrong_token_conflicts_and_changes_nothing(env):
    store = env.rt.store
    job = created(env)
    with pytest.raises(Conflict):
        store.finish(TENANT, job.job_id, "never-claimed", "succeeded", {}, T0)
    store.claim(TENANT, job.job_id, "tok", 60, T0)
    with pytest.raises(Conflict) as info:
        store.finish(TENANT, job.job_id, "other", "succeeded", {"resultKey": "x"}, T0 + 1)
    assert info.value.job.status == "running"
    got = store.get(TENANT, job.job_id, T0)
    assert got.status == "running" and got.result_key is None and got.completed_at is None


def test_finish_sets_values_removes_none_and_happens_only_once(env):
    store = env.rt.store
    job = created(env)
    store.claim(TENANT, job.job_id, "tok", 60, T0)
    store.release(TENANT, job.job_id, "tok", "handler_error", "first try failed")
    store.claim(TENANT, job.job_id, "tok2", 60, T0 + 1)
    done = store.finish(TENANT, job.job_id, "tok2", "succeeded",
                        {"resultKey": "k", "resultSize": 3, "validUntil": T0 + DAY,
                         "errorCode": None, "errorMessage": None}, T0 + 2)
    assert done.status == "succeeded" and done.completed_at == pytest.approx(T0 + 2)
    assert done.result_key == "k" and done.result_size == 3
    assert done.error_code is None and done.error_message is None
    with pytest.raises(Conflict):
        store.finish(TENANT, job.job_id, "tok2", "failed", {"errorCode": "late"}, T0 + 3)
    assert store.get(TENANT, job.job_id, T0).status == "succeeded"


def test_finish_without_a_token_only_ends_a_job_nobody_holds(env):
    store = env.rt.store
    queued = created(env)
    ended = store.finish(TENANT, queued.job_id, None, "failed", {"errorCode": "dead_lettered"}, T0)
    assert ended.status == "failed" and ended.error_code == "dead_lettered"
    held = created(env)
    store.claim(TENANT, held.job_id, "tok", 60, T0)
    with pytest.raises(Conflict):
        store.finish(TENANT, held.job_id, None, "failed", {}, T0 + 30)
    lapsed = store.finish(TENANT, held.job_id, None, "failed", {}, T0 + 61)
    assert lapsed.status == "failed" and lapsed.lease_token is None
    with pytest.raises(Conflict):
        store.finish(TENANT, new_job_id(T0), None, "failed", {}, T0)  # never creates a job


# -- cancel --------------------------------------------------------------------------------

def test_cancel_then_finish_with_the_token_conflicts_and_the_job_stays_canceled(env):
    store = env.rt.store
    job = created(env)
    store.claim(TENANT, job.job_id, "tok", 60, T0)
    before = cancel(store, TENANT, job.job_id, T0 + 1)
    assert before.status == "running"  # the job as it was
    with pytest.raises(Conflict) as info:
        store.finish(TENANT, job.job_id, "tok", "succeeded", {"resultKey": "late"}, T0 + 2)
    assert info.value.job.status == "canceled"
    with pytest.raises(Conflict):
        store.heartbeat(TENANT, job.job_id, "tok", {"progressPercent": 99.0})
    with pytest.raises(Conflict):
        store.release(TENANT, job.job_id, "tok", "handler_error", "x")
    with pytest.raises(Conflict):
        store.finish(TENANT, job.job_id, None, "failed", {}, T0 + 999)
    got = store.get(TENANT, job.job_id, T0)
    assert got.status == "canceled" and got.result_key is None and got.lease_token is None
    assert got.completed_at == pytest.approx(T0 + 1)


def test_cancel_of_a_queued_job_blocks_its_claim(env):
    store = env.rt.store
    job = created(env)
    assert cancel(store, TENANT, job.job_id, T0).status == "queued"
    with pytest.raises(Conflict):
        store.claim(TENANT, job.job_id, "tok", 60, T0 + 1)
    got = store.get(TENANT, job.job_id, T0)
    assert got.status == "canceled" and got.attempts == 0 and got.started_at is None


@pytest.mark.parametrize("state", ["succeeded", "failed", "canceled"])
def test_cancel_of_a_finished_job_conflicts_with_its_state(env, state):
    job = created(env, status=state)
    with pytest.raises(Conflict) as info:
        cancel(env.rt.store, TENANT, job.job_id, T0)
    assert info.value.job.status == state
    assert env.rt.store.get(TENANT, job.job_id, T0).status == state


def test_cancel_of_an_unknown_or_expired_job_conflicts(env):
    with pytest.raises(Conflict) as info:
        cancel(env.rt.store, TENANT, new_job_id(T0), T0)
    assert info.value.job is None
    old = created(env, ttl=5)
    with pytest.raises(Conflict):
        cancel(env.rt.store, TENANT, old.job_id, T0 + 5)


# -- delete --------------------------------------------------------------------------------

def test_delete_removes_a_finished_job_only(env):
    store = env.rt.store
    queued = created(env)
    with pytest.raises(Conflict) as info:
        store.delete(TENANT, queued.job_id)
    assert info.value.job.status == "queued"
    assert store.get(TENANT, queued.job_id, T0) is not None
    done = created(env, status="succeeded", result_key="results/acme/x")
    assert store.delete(TENANT, done.job_id).result_key == "results/acme/x"
    assert store.get(TENANT, done.job_id, T0) is None
    assert walk(store, T0, 10) == [[queued.job_id]]
    with pytest.raises(Conflict):
        store.delete(TENANT, done.job_id)


# -- listing -------------------------------------------------------------------------------

def test_list_pages_of_10_over_25_jobs_are_10_10_5_newest_first(env):
    store = env.rt.store
    ids = [created(env, T0 + i).job_id for i in range(25)]
    pages, after = [], None
    for _ in range(3):
        page = store.list(TENANT, T0, status=None, service=None, limit=10, after=after)
        pages.append([j.job_id for j in page.jobs])
        after = page.last_job_id
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [j for p in pages for j in p] == ids[::-1]
    assert after is None


def insert(env: Any, n: int, start: float, **fields: Any) -> list[str]:
    """n jobs written straight into the table (BatchWriteItem), 1 ms apart: fast enough for
    10,000, and the same items store.create writes."""
    from localrunner.bulk import write_jobs

    jobs = [make_job(start + i * 0.001, **fields) for i in range(n)]
    write_jobs(env.rt.clients.dynamodb, env.rt.settings.table_name, jobs)
    return [job.job_id for job in jobs]


@pytest.mark.parametrize("size", [1_000, 10_000])
def test_a_page_of_20_reads_at_most_64_items_on_average_newest_first(env, size):
    """The shards merged: pages of 20 come newest first with a stable cursor, and read on
    average at most 64 items (index entries evaluated + the page's jobs read by key), at
    1,000 jobs as at 10,000."""
    ids = insert(env, size, T0 - size * 0.001)
    store, after, pages, reads_per_page = env.rt.store, None, 5, []
    listed: list[str] = []
    for _ in range(pages):
        with counting_queries(env) as reads:
            page = store.list(TENANT, T0, status=None, service=None, limit=20, after=after)
        reads_per_page.append(reads.items)
        listed += [j.job_id for j in page.jobs]
        after = page.last_job_id
    assert listed == ids[::-1][:20 * pages]
    assert sum(reads_per_page) / pages <= 64, reads_per_page
    # the cursor is stable: jobs submitted after page 1 was read do not shift page 2
    first = store.list(TENANT, T0, status=None, service=None, limit=20, after=None)
    insert(env, 30, T0 + 1)
    second = store.list(TENANT, T0, status=None, service=None, limit=20,
                        after=first.last_job_id)
    assert [j.job_id for j in second.jobs] == ids[::-1][20:40]


def test_deep_pages_and_filters_read_about_a_page_not_the_table(env):
    store = env.rt.store
    for i in range(200):
        created(env, T0 + i, service="echo" if i % 2 else "sleep")
    for filters in ({}, {"status": "queued"}, {"service": "echo"}):
        with counting_queries(env) as reads:
            page = store.list(TENANT, T0, status=filters.get("status"), service=filters.get("service"),
                              limit=10, after=None)
        assert len(page.jobs) == 10 and page.last_job_id == page.jobs[-1].job_id
        assert reads.items <= 64, (filters, reads)
    after = walk(store, T0, 50)[1][-1]
    with counting_queries(env) as reads:
        page = store.list(TENANT, T0, status=None, service=None, limit=10, after=after)
    assert len(page.jobs) == 10 and reads.items <= 64


def test_list_filters_by_status_and_service_and_follows_state_changes(env):
    store = env.rt.store
    echo = [created(env, T0 + i).job_id for i in range(3)]
    sleep = [created(env, T0 + 10 + i, service="sleep").job_id for i in range(3)]
    store.claim(TENANT, echo[1], "tok", 60, T0)
    cancel(store, TENANT, sleep[0], T0)
    flat = lambda pages: [j for p in pages for j in p]  # noqa: E731
    assert flat(walk(store, T0, 2, service="echo")) == echo[::-1]
    assert flat(walk(store, T0, 2, service="sleep")) == sleep[::-1]
    assert flat(walk(store, T0, 2, status="running")) == [echo[1]]
    assert flat(walk(store, T0, 2, status="canceled")) == [sleep[0]]
    assert flat(walk(store, T0, 1, status="queued")) == [sleep[2], sleep[1], echo[2], echo[0]]
    assert flat(walk(store, T0, 5, status="queued", service="sleep")) == [sleep[2], sleep[1]]
    store.finish(TENANT, echo[1], "tok", "succeeded", {}, T0 + 1)
    assert flat(walk(store, T0, 2, status="running")) == []
    assert flat(walk(store, T0, 2, status="succeeded")) == [echo[1]]


def test_list_never_shows_another_tenants_jobs(env):
    store = env.rt.store
    mine = [created(env, T0 + i).job_id for i in range(3)]
    theirs = [created(env, T0 + 10 + i, tenant="bobco").job_id for i in range(2)]
    assert walk(store, T0, 10) == [mine[::-1]]
    assert walk(store, T0, 10, tenant="bobco") == [theirs[::-1]]
    # starting "after" another tenant's job ID still reads only bobco's partition
    page = store.list("bobco", T0, status=None, service=None, limit=10, after=mine[2])
    assert {j.tenant for j in page.jobs} <= {"bobco"}


def test_expired_jobs_are_not_listed(env):
    store = env.rt.store
    old = [created(env, T0 + i, ttl=100).job_id for i in range(3)]
    new = [created(env, T0 + 10 + i, ttl=DAY).job_id for i in range(2)]
    assert [j for p in walk(store, T0 + 50, 10) for j in p] == (old + new)[::-1]
    assert walk(store, T0 + 200, 10) == [new[::-1]]
    assert walk(store, T0 + 200, 10, status="queued") == [new[::-1]]
    assert walk(store, T0 + 2 * DAY, 10) == [[]]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_around_expired_jobs_still_visits_every_live_job(env, limit):
    store = env.rt.store
    ids = [created(env, T0 + i, ttl=100 if i in (1, 4) else DAY).job_id for i in range(6)]
    live = [j for i, j in enumerate(ids) if i not in (1, 4)][::-1]
    assert [j for p in walk(store, T0 + 200, limit) for j in p] == live


# -- runId ---------------------------------------------------------------------------------

def test_a_run_id_can_be_claimed_once_per_tenant(env):
    store = env.rt.store
    first = created(env, run_id="run-1", request_hash="h1")
    assert store.run_id_owner(TENANT, "run-1") == (first.job_id, "h1")
    second = make_job(T0 + 1, run_id="run-1", request_hash="h2")
    with pytest.raises(RunIdTaken) as info:
        store.create(second)
    assert info.value.job_id == first.job_id and info.value.request_hash == "h1"
    assert store.get(TENANT, second.job_id, T0) is None  # the transaction wrote nothing
    assert walk(store, T0, 10) == [[first.job_id]]
    # another tenant's runIds are its own
    theirs = created(env, T0 + 2, tenant="bobco", run_id="run-1", request_hash="h3")
    assert store.run_id_owner("bobco", "run-1") == (theirs.job_id, "h3")
    assert store.run_id_owner(TENANT, "run-1") == (first.job_id, "h1")
    assert store.run_id_owner(TENANT, "run-2") is None


def test_a_run_id_is_free_again_once_its_job_expired(env):
    store = env.rt.store
    created(env, run_id="run-1", request_hash="h1", ttl=100)
    later = created(env, T0 + 101, run_id="run-1", request_hash="h2")
    assert store.run_id_owner(TENANT, "run-1") == (later.job_id, "h2")


def test_forget_removes_the_job_and_its_run_id(env):
    store = env.rt.store
    job = created(env, run_id="run-9", request_hash="h")
    store.forget(job)
    assert store.get(TENANT, job.job_id, T0) is None
    assert store.run_id_owner(TENANT, "run-9") is None
    assert created(env, T0 + 1, run_id="run-9").run_id == "run-9"


# -- active count (quota) ------------------------------------------------------------------

def test_count_active_counts_queued_and_running_up_to_the_cap(env):
    store = env.rt.store
    jobs = [created(env, T0 + i) for i in range(6)]
    store.claim(TENANT, jobs[0].job_id, "tok", 60, T0)
    cancel(store, TENANT, jobs[1].job_id, T0)
    created(env, T0, tenant="bobco")
    created(env, T0 + 7, ttl=1)  # expired at T0 + 10
    assert store.count_active(TENANT, 100, T0 + 10) == 5
    with counting_queries(env) as reads:
        assert store.count_active(TENANT, 3, T0 + 10) == 3
    assert reads.scanned <= 4


def test_backfill_gives_jobs_from_before_the_sharded_indexes_their_listing_keys(env):
    """A deployment with existing jobs: items without the l*pk keys are not listed until the
    backfill (infra/README.md) adds them; a rerun changes nothing."""
    from localrunner.backfill_index_keys import backfill

    db, table = env.rt.clients.dynamodb, env.rt.settings.table_name
    old = [created(env, T0 + i, status=s) for i, s in enumerate(["queued", "succeeded"])]
    for job in old:  # as the previous code wrote them: no sharded index keys
        db.update_item(TableName=table, Key={"pk": {"S": f"T#{TENANT}#J#{job.job_id}"},
                                             "sk": {"S": "JOB"}},
                       UpdateExpression="REMOVE l1pk, l2pk, l3pk")
    new = created(env, T0 + 5)
    assert walk(env.rt.store, T0, 10) == [[new.job_id]]
    assert backfill(db, table) == 2
    assert backfill(db, table) == 0
    assert walk(env.rt.store, T0, 10) == [[new.job_id, old[1].job_id, old[0].job_id]]
    assert walk(env.rt.store, T0, 10, status="succeeded") == [[old[1].job_id]]


def test_backfill_moves_queued_and_running_jobs_from_before_the_active_partition(env):
    """Jobs queued or running when the shared `active` status partition was deployed carry
    `acme#queued#NN` / `acme#running#NN`: queued and running listings miss them until the
    backfill moves them (or their claim or end rewrites the key); a rerun changes nothing."""
    from chalicelib.store import index_shard, status_index_key
    from localrunner.backfill_index_keys import backfill

    db, table = env.rt.clients.dynamodb, env.rt.settings.table_name
    store = env.rt.store
    old = [created(env, T0 + i) for i in range(3)]
    store.claim(TENANT, old[1].job_id, "tok", 60, T0)
    store.finish(TENANT, old[2].job_id, None, "failed", {}, T0)
    for job, legacy in ((old[0], "queued"), (old[1], "running")):  # as the previous code wrote
        db.update_item(TableName=table, Key={"pk": {"S": f"T#{TENANT}#J#{job.job_id}"},
                                             "sk": {"S": "JOB"}},
                       UpdateExpression="SET l2pk = :k", ExpressionAttributeValues={":k": {
                           "S": status_index_key(TENANT, legacy, index_shard(job.job_id))}})
    assert walk(store, T0, 10, status="queued") == [[]]
    assert walk(store, T0, 10, status="running") == [[]]
    assert backfill(db, table) == 2
    assert backfill(db, table) == 0
    assert walk(store, T0, 10, status="queued") == [[old[0].job_id]]
    assert walk(store, T0, 10, status="running") == [[old[1].job_id]]
    assert walk(store, T0, 10, status="failed") == [[old[2].job_id]]
    assert store.count_active(TENANT, 10, T0) == 2


def test_running_and_queued_listings_page_through_the_shared_partition(env):
    store = env.rt.store
    jobs = [created(env, T0 + i).job_id for i in range(12)]
    running = jobs[::3]
    for job_id in running:
        store.claim(TENANT, job_id, "tok", 60, T0)
    queued = [j for j in jobs if j not in running]
    for limit in (1, 2, 3, 5):
        assert [j for p in walk(store, T0, limit, status="running") for j in p] == running[::-1]
        assert [j for p in walk(store, T0, limit, status="queued") for j in p] == queued[::-1]
    # a full page of the rarer status reads what it must, not more than the partition
    with counting_queries(env) as reads:
        page = store.list(TENANT, T0, status="running", service=None, limit=2, after=None)
    assert [j.job_id for j in page.jobs] == running[::-1][:2]
    assert reads.items <= 12 + 2 * 16


# -- partition budget ------------------------------------------------------------------------

PARTITION_WCU = 1000  # DynamoDB's write throughput of one partition, per second


def test_one_tenant_at_5000_submits_and_5000_ends_a_second_keeps_every_partition_under_1000_wcu():
    """The write rate of every table and index partition for one tenant submitting 5,000
    jobs a second while 5,000 a second end (queued → running → succeeded), from the real key
    functions: the job's own item (submit, claim, two progress writes, end, one webhook
    record), its three listing-index entries (a changed key is a delete and a put; each
    entry is under 1 KB, so one unit; queued and running share the status partition, so
    only the end moves it), the queue-depth counter (a place taken at submit, given back at
    the claim) and the tenant's quota counter (a slot taken at submit, given back at the
    end)."""
    from collections import Counter

    from chalicelib import capacity
    from chalicelib.limits import item_size
    from chalicelib.store import (
        INDEX_PROJECTED,
        index_keys,
        index_shard,
        job_pk,
        job_to_item,
        status_index_key,
    )

    rate = 5000
    writes: Counter[tuple[str, str]] = Counter()
    caps = capacity.shard_caps(10_000)
    quota = capacity.shard_caps(10_000)  # a tenant allowed 10,000 active jobs
    for i in range(rate):
        job = make_job(T0 + i / rate, input={"n": i})
        item = job_to_item(job)
        projected = {k: v for k, v in item.items()
                     if k in ("pk", "sk", "gsk", "l1pk", "l2pk", "l3pk", *INDEX_PROJECTED)}
        assert item_size(projected) <= 1024  # one write unit per index entry
        shard = index_shard(job.job_id)
        # submit: the job item, one entry in each listing index, a queue place
        writes[("table", job_pk(TENANT, job.job_id))] += 1
        for attr, key in index_keys(job).items():
            writes[(attr, key)] += 1
        home = capacity._home(job.job_id, len(caps))
        writes[("table", f"SYS#capacity#jobs#{home}")] += 1
        slot = capacity._home(job.job_id, len(quota))
        writes[("table", capacity._slot_key(TENANT, slot)["pk"]["S"])] += 1
        # claim: the job item (its status entry stays in the active partition), the place
        # given back; then two progress writes of the job item
        writes[("table", job_pk(TENANT, job.job_id))] += 3
        writes[("table", f"SYS#capacity#jobs#{home}")] += 1
        # end: the job item, the status entry moves active → succeeded, the slot given
        # back; the webhook's record, on the job item
        writes[("table", job_pk(TENANT, job.job_id))] += 2
        writes[("l2pk", status_index_key(TENANT, "active", shard))] += 1
        writes[("l2pk", status_index_key(TENANT, "succeeded", shard))] += 1
        writes[("table", capacity._slot_key(TENANT, slot)["pk"]["S"])] += 1
    hottest = max(writes.items(), key=lambda kv: kv[1])
    assert hottest[1] <= PARTITION_WCU, hottest
