"""`make mutate`: mutation testing (mutmut) of the functions that hold Jobgate's rules, run
against the fast test files that cover them (pyproject.toml [tool.mutmut]).

    python -m bench.mutation run      # mutmut over RULES, then the report
    python -m bench.mutation report   # the report of the last run only

The report prints the score per module (killed ÷ mutants tried; a timeout counts as
killed) and writes bench/mutation.json with every survivor, and the reason when it is an
equivalent mutant (a change no test can see, listed in EQUIVALENT after reading it)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "mutation.json"
TARGET = 85.0

# module -> the functions holding its rules (mutmut's mangled names: Class ǁ method).
# Chosen to run in under 30 minutes on 2 cores: each worker or deliverer mutant costs
# several seconds of moto-backed tests.
RULES: dict[str, list[str]] = {
    "chalicelib.store": [  # the lease and terminal conditional writes
        "xǁJobStoreǁclaim", "xǁJobStoreǁheartbeat", "xǁJobStoreǁfinish", "xǁJobStoreǁrelease",
        "xǁJobStoreǁset_callback_state", "xǁJobStoreǁ_conflict",
    ],
    "chalicelib.urls": [  # the callback URL rules (all but the resolver, which tests stub)
        "x_parse_target", "x__host_literal", "x_embedded_ipv4", "x_forbidden",
        "x_is_local_name", "x_resolve", "x__site", "x_parse_host_ports", "x__forbidden_sites",
        "x_check_addresses", "x_check_callback_url",
    ],
    "chalicelib.webhooks": ["x_sign", "x_retry_delay"],  # signing, the retry schedule
    "chalicelib.worker": [  # claim, finish, the progress throttle
        "xǁWorkerǁprocess", "xǁWorkerǁ_end", "xǁRunContextǁ_flush",
    ],
    "chalicelib.callbacks": ["xǁDelivererǁprocess"],  # the deliverer's schedule
}

# Survivors read and found equivalent: mutant name -> why no test can tell it apart.
_SITE_LABEL = ("the label for this machine is only compared with itself, so any constant "
               "does")
EQUIVALENT: dict[str, str] = {
    "chalicelib.urls.x__site__mutmut_16": _SITE_LABEL,
    "chalicelib.urls.x__site__mutmut_17": _SITE_LABEL,
    "chalicelib.urls.x__forbidden_sites__mutmut_4": (
        "the port only fills the port of the addresses getaddrinfo returns, which are "
        "discarded: the same addresses either way"),
    "chalicelib.webhooks.x_retry_delay__mutmut_1": (
        "the default schedule's name: every schedule but 'fixed' is exponential"),
    "chalicelib.webhooks.x_retry_delay__mutmut_2": (
        "the default schedule's name: every schedule but 'fixed' is exponential"),
}

KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout",
          152: "timeout", 255: "timeout"}


def globs() -> list[str]:
    return [f"{module}.{fn}__mutmut_*" if fn != "*" else f"{module}.*"
            for module, fns in RULES.items() for fn in fns]


def selected(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs())


def status(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    return {0: "survived", None: "not checked", 5: "no tests", 33: "no tests",
            34: "skipped", 37: "caught by type check"}.get(code, "suspicious")


def diff(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                         capture_output=True, text=True, check=False).stdout
    changed = [ln for ln in out.splitlines()
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return " | ".join(ln.strip() for ln in changed)[:300]


def report(seconds: float | None = None) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    for meta in sorted((ROOT / "mutants" / "chalicelib").glob("*.py.meta")):
        module = "chalicelib." + meta.name.removesuffix(".py.meta")
        if module not in RULES:
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        mine = {k: v for k, v in codes.items() if selected(k)}
        counts = Counter(status(v) for v in mine.values())
        survivors = [k for k, v in mine.items() if status(v) not in ("killed", "not checked")]
        tried = sum(n for s, n in counts.items() if s not in ("not checked",))
        equivalent = [k for k in survivors if k in EQUIVALENT]
        score = 100.0 * counts["killed"] / tried if tried else 0.0
        modules[module] = {
            "functions": RULES[module], "mutants": len(mine), "tried": tried,
            "killed": counts["killed"], "survived": counts["survived"],
            "notChecked": counts["not checked"],  # an interrupted run
            "noTests": counts["no tests"], "other": tried - counts["killed"]
            - counts["survived"] - counts["no tests"],
            "score": round(score, 1),
            "scoreWithoutEquivalent": round(
                100.0 * counts["killed"] / (tried - len(equivalent)), 1)
            if tried > len(equivalent) else 0.0,
            "survivors": [{"mutant": k, "status": status(mine[k]), "change": diff(k),
                           "equivalent": EQUIVALENT.get(k)} for k in sorted(survivors)],
        }
    tried = sum(m["tried"] for m in modules.values())
    killed = sum(m["killed"] for m in modules.values())
    unchecked = sum(m["notChecked"] for m in modules.values())
    result = {"tool": "mutmut 3.8.1", "target": TARGET, "seconds": seconds,
              "complete": unchecked == 0, "notChecked": unchecked,
              "total": {"tried": tried, "killed": killed,
                        "score": round(100.0 * killed / tried, 1) if tried else 0.0},
              "modules": modules}
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{'module':24} {'mutants':>8} {'killed':>7} {'survived':>9} {'score':>7}")
    for name, m in modules.items():
        print(f"{name:24} {m['tried']:8d} {m['killed']:7d} {m['survived']:9d} {m['score']:6.1f}%")
    print(f"{'total':24} {tried:8d} {killed:7d} {tried - killed:9d} "
          f"{result['total']['score']:6.1f}%   (target {TARGET:g} %; written to {OUT.name})")
    for m in modules.values():
        for s in m["survivors"]:
            why = f"  [equivalent: {s['equivalent']}]" if s["equivalent"] else ""
            print(f"  {s['status']}: {s['mutant']}: {s['change']}{why}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["run", "report"], nargs="?", default="run")
    args = parser.parse_args()
    seconds = None
    if args.what == "run":
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "mutmut", "run", *globs()], cwd=ROOT, check=True)
        seconds = round(time.monotonic() - started)
    result = report(seconds)
    if result["total"]["score"] < TARGET:
        sys.exit(f"mutation score {result['total']['score']} % is under the {TARGET:g} % target")


if __name__ == "__main__":
    main()
