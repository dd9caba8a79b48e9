"""The fleet benchmark's two tables (the fleet, and each process in it) and the issue's targets per row."""

from __future__ import annotations

import statistics
from typing import Any

from bench.fleet import meets


def is_ok(r: dict[str, Any]) -> bool:
    return "error" not in r and bool(r["end_state"]["ok"]) and all(code == 0 for code in r["exit_codes"])


def median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median goodput stands for the case; every round stays in `runs`."""
    if len(results) == 1:
        return results[0]
    failed = [r for r in results if not is_ok(r)]
    ordered = sorted(results, key=lambda r: r.get("goodput_over_c", 0.0))
    chosen = dict(failed[0] if failed else ordered[len(ordered) // 2])
    keys = ("goodput_over_c", "throttled_share", "receives_per_msg", "dead_lettered", "cpu_ms_per_msg", "error")
    chosen["runs"] = [{k: r.get(k) for k in keys} for r in results]
    if not failed:
        chosen["goodput_over_c_median"] = statistics.median(r["goodput_over_c"] for r in results)
    return chosen


FLEET_COLUMNS = (
    ("contender", 26),
    ("procs", 5),
    ("N", 6),
    ("C w/s", 6),
    ("RTT ms", 6),
    ("wall s", 7),
    ("ideal s", 7),
    ("goodput/s", 9),
    ("goodput/C", 9),
    ("throttled", 9),
    ("recv/msg", 8),
    ("max recv", 8),
    ("DLQ", 5),
    ("CPU ms/msg", 10),
    ("peak RSS MB", 11),
    ("others", 6),
    ("check", 5),
    ("targets missed", 14),
)


def _row(cells: tuple[str, ...], columns: tuple[tuple[str, int], ...]) -> str:
    return "  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, columns, strict=True))


def fleet_table(results: list[dict[str, Any]]) -> str:
    """One row per case; with --repeat, the median round's figures and every round's goodput / C."""
    lines = [_row(tuple(name for name, _ in FLEET_COLUMNS), FLEET_COLUMNS) + "  goodput/C of each round"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['case']:>26}  {r['processes']:>5}  ERROR: {r['error'].splitlines()[0]}")
            continue
        missed = [name for name, ok in meets(r).items() if not ok]
        cells = (
            r["case"],
            str(r["processes"]),
            str(r["n"]),
            f"{r['capacity']:g}",
            f"{r['latency_ms']:g}",
            f"{r['wall_s']:.1f}",
            f"{r['ideal_wall_s']:.1f}",
            f"{r['goodput']:,.0f}",
            f"{r['goodput_over_c']:.2f}",
            f"{r['throttled_share']:.1%}",
            f"{r['receives_per_msg']:.2f}",
            str(r["max_receive_count"]),
            str(r["dead_lettered"]),
            f"{r['cpu_ms_per_msg']:.3f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r.get('other_cores', 0):.2f}",
            "PASS" if is_ok(r) else "FAIL",
            f"{len(missed)} of 4" if missed else "none",
        )
        rounds = " ".join(f"{run['goodput_over_c']:.2f}" for run in r.get("runs", []) if run.get("goodput_over_c"))
        lines.append(_row(cells, FLEET_COLUMNS) + f"  {rounds or '-'}")
    return "\n".join(lines)


PROCESS_COLUMNS = (
    ("contender", 26),
    ("process", 14),
    ("received", 8),
    ("deleted", 7),
    ("puts", 6),
    ("throttled", 9),
    ("written", 7),
    ("CPU s", 6),
    ("CPU ms/msg", 10),
    ("peak RSS MB", 11),
    ("exit", 4),
)


def process_table(results: list[dict[str, Any]]) -> str:
    """One row per process: what the endpoint counted on its port, and its own CPU and memory."""
    lines = [_row(tuple(name for name, _ in PROCESS_COLUMNS), PROCESS_COLUMNS)]
    for r in results:
        for p in r.get("per_process", []):
            per_msg = p["cpu_ms_per_msg"]
            cells = (
                r["case"],
                p["process"],
                str(p["received"]),
                str(p["deleted"]),
                str(p["puts"]),
                f"{p['throttled_share']:.1%}",
                str(p["written"]),
                f"{p['cpu_s']:.2f}",
                "-" if per_msg is None else f"{per_msg:.3f}",
                f"{p['peak_rss_mb']:.0f}",
                str(p["exit_code"]),
            )
            lines.append(_row(cells, PROCESS_COLUMNS))
    return "\n".join(lines)


def target_lines(results: list[dict[str, Any]]) -> list[str]:
    """PASS/FAIL of each target for each row: reported, not enforced (this run is the 'before')."""
    lines = []
    for r in results:
        if "error" in r:
            continue
        checks = meets(r)
        marks = "  ".join(f"{'PASS' if ok else 'FAIL'} {name}" for name, ok in checks.items())
        lines.append(f"{r['case']:<26} {marks}")
        if r["put_throttled"] == 0:
            lines.append(
                f"{'':<26} note: not one put was throttled, so the fleet never reached C: it was slower than the "
                f"table (other work took {r.get('other_cores', 0):.2f} cores); its goodput / C measures the machine"
            )
    return lines


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR: {r['error'].splitlines()[0]}"
    return (
        f"goodput {r['goodput_over_c']:.2f} C  throttled {r['throttled_share']:.1%}  "
        f"recv/msg {r['receives_per_msg']:.2f}  DLQ {r['dead_lettered']}  ok={is_ok(r)}"
    )
