"""The benchmark's results as printed tables."""

from __future__ import annotations

from typing import Any

from bench.metering import PRICES

# -- report -----------------------------------------------------------------------------------

def table(title: str, rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title, "-" * len(title)]
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    req, cold, sub, lst, thr, mem = (r["detail"][k] for k in (
        "requests", "cold_start", "submit", "listing", "throughput", "memory"))
    out = []
    rows = [("phase", "operation", "requests/job")]
    for phase, ops in req["by_phase"].items():
        for op, n in ops.items():
            rows.append((phase, op, f"{n:g}"))
    rows.append(("total (ours)", "", f"{req['aws_requests_per_job']:g}  (target <= 8)"))
    for op, n in req["event_source_mapping_per_job"].items():
        rows.append(("event source mapping", op, f"{n:g}"))
    out.append(table(f"1. AWS requests per job lifecycle (steady state, mean of "
                     f"{req['jobs_measured']} jobs after {req['warmup_jobs']} warm-up jobs)", rows))
    first = req["first_job_cold_caches"]
    out.append(f"   the very first job (cold caches) made {first['requests']} requests: "
               + ", ".join(f"{op} x{n}" for op, n in sorted(first["by_operation"].items()))
               + f"\n   cache refreshes: {req['cache_refreshes']}")
    ru = req["dynamodb_request_units_per_job"]
    out.append(f"   DynamoDB request units per job: {ru['write']:g} WRU (target <= 8), "
               f"{ru['read']:g} RRU; write units by phase: "
               + ", ".join(f"{k} {v:g}" for k, v in ru["write_by_phase"].items())
               + "\n   by what was written: "
               + ", ".join(f"{k} {v:g}" for k, v in ru["write_by_item"].items())
               + "\n   (counted from the items before and after each write, per index projection)"
               + f"\n   tenant quota (429): {ru['write_by_item'].get('tenant_quota_counter', 0):g} "
               "WRU per job (a slot taken at submit, given back at the end), "
               f"{req['tenant_quota_reads_per_submit']:g} index reads per submit")
    ro = req["usd_per_million_jobs_requests_only"]
    out.append("   USD per million jobs, requests only (target <= 18): "
               + ", ".join(f"{k} {v:.2f}" for k, v in ro.items()))
    cost = req["cost_usd_per_million_jobs"]
    rows = [("service", "USD per million jobs")]
    rows += [(k, f"{v:.4f}") for k, v in cost.items()]
    rows += [(f"not in total: {k}", f"{v:.4f}")
             for k, v in req["cost_usd_per_million_jobs_not_included"].items()]
    out.append(table("   cost at AWS list prices, us-east-1, no free tier", rows))
    p = {k: v * (1e3 if k.startswith("s3") else 1e6) for k, v in PRICES.items()}
    out.append(
        f"   prices: DynamoDB on-demand ${p['dynamodb_write_request_unit']:.3f}/M WRU, "
        f"${p['dynamodb_read_request_unit']:.3f}/M RRU; SQS ${p['sqs_request']:.2f}/M requests; "
        f"S3 PUT ${p['s3_put_class_request']:.3f}/1000, GET ${p['s3_get_class_request']:.4f}/1000;\n"
        f"   Lambda ${p['lambda_request']:.2f}/M requests + ${PRICES['lambda_gb_second']:.10f}/GB-s "
        f"(memory from .chalice/config.json {req['lambda']['memory_mb']}, durations measured "
        "in process on moto);\n"
        f"   API Gateway REST ${p['api_gateway_rest_request']:.2f}/M. Storage (DynamoDB "
        "$0.25/GB-month, S3 $0.023/GB-month) and data transfer not included.")
    out.append(table("2. Cold start (import in a fresh interpreter, median of "
                     f"{cold['runs']})", [
                         ("import", "ms"),
                         ("import app", f"{cold['import_app_ms']:.1f}"),
                         ("import chalice, boto3, pydantic",
                          f"{cold['import_chalice_boto3_pydantic_ms']:.1f}"),
                         ("ratio (target <= 1.2)", f"{cold['cold_import_ratio']:.3f}"),
                         ("ratio in CPU time", f"{cold['cold_import_cpu_ratio']:.3f}")]))
    out.append(table(f"3. Submit cost in process on moto (median of {sub['runs']}, warm)", [
        ("route", "median ms", "p90 ms"),
        ("POST /v1/jobs", f"{sub['submit_median_ms']:.2f}", f"{sub['submit_p90_ms']:.2f}"),
        ("bare route: PutItem + SendMessage", f"{sub['bare_median_ms']:.2f}", f"{sub['bare_p90_ms']:.2f}"),
        ("ratio (target <= 1.5)", f"{sub['submit_overhead_ratio']:.3f}", "")]))
    rows = [("jobs stored", "items returned", "ScannedCount", "queries", "RRU", "median ms (moto)")]
    for size, v in lst["by_table_size"].items():
        rows.append((size, str(v["items_returned"]), str(v["scanned_count"]), str(v["queries"]),
                     f"{v['read_request_units']:g}", f"{v['median_ms']:.1f}"))
    out.append(table("4. Listing: one page of 20 (GET /v1/jobs?limit=20)", rows))
    out.append(f"   items read: {lst['list_items_read_1k']} at 1k, {lst['list_items_read_10k']} at 10k. "
               + lst["note"])
    out.append(table(f"5. Local runner throughput ({thr['jobs']} echo jobs, {thr['clients']} "
                     "clients, one process on moto)", [
                         ("figure", "value"),
                         ("jobs/s (first submit to last end)", f"{thr['throughput_jobs_per_s']:.2f}"),
                         ("latency p50, submit -> succeeded (s)", f"{thr['latency_p50_s']:.3f}"),
                         ("latency p99 (s)", f"{thr['latency_p99_s']:.3f}"),
                         ("submits/s accepted", f"{thr['submit_rate_per_s']:.1f}"),
                         ("worker start -> end p50 (ms)", f"{thr['run_time_p50_ms']:.1f}"),
                         ("succeeded / errors", f"{thr['succeeded']} / {thr['errors']}")]))
    rows = [("document", "input bytes", "peak bytes", "MB per MB of input")]
    for name, v in mem.items():
        if isinstance(v, dict):
            rows.append((name, str(v["input_bytes"]), str(v["peak_bytes"]),
                         f"{v['peak_memory_per_input_mb']:.2f}"))
    rows.append(("worst (target <= 10)", "", "", f"{mem['dataload_peak_memory_per_input_mb']:.2f}"))
    out.append(table("6. dataload peak memory per MB of input (tracemalloc, handler only)", rows))
    return "\n\n".join(out)
