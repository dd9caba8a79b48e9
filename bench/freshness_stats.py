"""The freshness benchmark's arithmetic: from each message's send time and its item's first write, the
percentiles, in milliseconds and in round trips, and the table the run prints. No timing happens here.
"""

from __future__ import annotations

import math
from typing import Any

GOAL_P99_RTTS = 5.0  # issue 20: at half load, p99 at most 5 round trips


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`: an observed value, never an interpolation."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q} is not in 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def lags(sent_at: dict[str, float], written_at: dict[str, float], since: float) -> tuple[list[float], int]:
    """Seconds from send to first write for the messages sent at or after `since` (earlier ones are the warm-up);
    and how many of those have no write at all (never expected in a correct run)."""
    kept = {key: t for key, t in sent_at.items() if t >= since}
    found = [written_at[key] - t for key, t in kept.items() if key in written_at]
    return found, len(kept) - len(found)


def summarize(lag_s: list[float], rtt_ms: float) -> dict[str, Any]:
    """n, p50/p99/max in ms, and p99 in round trips (None at 0 ms RTT)."""
    if not lag_s:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "p99_rtts": None}
    p99_ms = percentile(lag_s, 99) * 1000
    return {
        "n": len(lag_s),
        "p50_ms": round(percentile(lag_s, 50) * 1000, 1),
        "p99_ms": round(p99_ms, 1),
        "max_ms": round(max(lag_s) * 1000, 1),
        "p99_rtts": round(p99_ms / rtt_ms, 2) if rtt_ms > 0 else None,
    }


def verdict(row: dict[str, Any]) -> str:
    """The goal applies at half load: PASS/FAIL there, '-' elsewhere."""
    rtts = row.get("p99_rtts")
    if row.get("load") != 0.5 or rtts is None:
        return "-"
    return "PASS" if rtts <= GOAL_P99_RTTS else "FAIL"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


COLUMNS = (
    ("contender", "contender"),
    ("rtt_ms", "RTT ms"),
    ("capacity_msg_s", "capacity msg/s"),
    ("load", "load"),
    ("offered_msg_s", "offered msg/s"),
    ("n", "n"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("p99_rtts", "p99 RTTs"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per (contender, RTT, load), with the goal's verdict."""
    head = [title for _, title in COLUMNS] + [f"p99 <= {GOAL_P99_RTTS:g} RTTs at 50%"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [_cell(f"{row['load']:.0%}" if key == "load" else row.get(key)) for key, _ in COLUMNS]
        lines.append("| " + " | ".join([*cells, verdict(row)]) + " |")
    return "\n".join(lines)
