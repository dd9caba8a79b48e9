"""Charts of a benchmark run, drawn from its JSON (matplotlib, a dev-only dependency):

- `bench-throughput.png`: msg/s against the round trip, one line per contender;
- `bench-cpu.png`: CPU per message at each round trip, one bar per contender;
- `bench-fleet.png`: the fleet under one table capacity: goodput / C and the share of throttled puts.

`python -m bench` draws them after each run; `python -m bench.charts RESULTS.json --out DIR` redraws them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

CHARTED = ("naive", "floor", "photo-ingest", "node")  # the steady cases; pairs and the soak are left out


def _throughput_rows(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for r in document.get("results", []):
        if "error" in r or r["contender"] not in CHARTED or "(" in r["case"]:
            continue
        series.setdefault(r["case"], []).append(r)
    return {label: sorted(rows, key=lambda r: r["latency_ms"]) for label, rows in series.items()}


def _subtitle(document: dict[str, Any]) -> str:
    env = document.get("environment", {})
    return f"{env.get('cpus', '?')} vCPUs, commit {env.get('git_commit', '?')}, {document.get('stamp', '')}".strip()


def _others(document: dict[str, Any]) -> str:
    """How much of the machine other work took during the cases: msg/s depends on it, CPU per message less."""
    others = [r["other_cores"] for rows in _throughput_rows(document).values() for r in rows if "other_cores" in r]
    if not others:
        return ""
    return f"\nother work on the machine meanwhile: {min(others):.2f}-{max(others):.2f} cores"


def throughput_chart(document: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, rows in _throughput_rows(document).items():
        ax.plot([r["latency_ms"] for r in rows], [r["msg_per_s"] for r in rows], marker="o", label=label)
    ax.set_xticks(sorted({r["latency_ms"] for rows in _throughput_rows(document).values() for r in rows}))
    ax.set_xlabel("round trip added to every request (ms)")
    ax.set_ylabel("messages / s")
    ax.set_title(f"Throughput against round trip\n{_subtitle(document)}{_others(document)}", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_chart(document: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    series = _throughput_rows(document)
    latencies = sorted({r["latency_ms"] for rows in series.values() for r in rows})
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (label, rows) in enumerate(series.items()):
        by_latency = {r["latency_ms"]: r["cpu_ms_per_msg"] for r in rows}
        xs = [i + index * width for i, lat in enumerate(latencies) if lat in by_latency]
        bars = ax.bar(xs, [by_latency[lat] for lat in latencies if lat in by_latency], width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(latencies))])
    ax.set_xticklabels([f"{lat:g} ms" for lat in latencies])
    ax.set_ylabel("CPU ms per message (process CPU / messages)")
    ax.set_title(f"CPU per message\n{_subtitle(document)}{_others(document)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fleet_chart(document: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [r for r in document.get("fleet", []) if "error" not in r]
    contenders = list(dict.fromkeys(r["case"].rsplit(" x", 1)[0] for r in rows))
    procs = sorted({r["processes"] for r in rows})
    width = 0.8 / max(1, len(contenders))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    for index, name in enumerate(contenders):
        mine = {r["processes"]: r for r in rows if r["case"].rsplit(" x", 1)[0] == name}
        xs = [i + index * width for i, k in enumerate(procs) if k in mine]
        for ax, key, scale in ((left, "goodput_over_c", 1.0), (right, "throttled_share", 100.0)):
            bars = ax.bar(xs, [mine[k][key] * scale for k in procs if k in mine], width, label=name)
            ax.bar_label(bars, fmt="%.2f" if scale == 1.0 else "%.0f%%", fontsize=7)
    for ax, title, target in ((left, "goodput / C", 0.9), (right, "puts throttled (%)", 5.0)):
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.set_xticks([i + width * (len(contenders) - 1) / 2 for i in range(len(procs))])
        ax.set_xticklabels([f"{k} process{'es' if k > 1 else ''}" for k in procs])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper right", ncols=3)
    config = document.get("fleet_config", {})
    fig.suptitle(
        f"Fleet sharing one table: C = {config.get('capacity', 0):g} writes/s, RTT {config.get('latency_ms', 0):g} ms, "
        f"N = {config.get('n', 0):,}\n{_subtitle(document)}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(document: dict[str, Any], out: Path) -> list[Path]:
    """Every chart the run has data for; the paths written. Nothing (and no error) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        print("bench: no charts (matplotlib is not installed: pip install -e '.[dev]')")
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if _throughput_rows(document):
        for name, chart in (("bench-throughput.png", throughput_chart), ("bench-cpu.png", cpu_chart)):
            chart(document, out / name)
            written.append(out / name)
    if any("error" not in r for r in document.get("fleet", [])):
        fleet_chart(document, out / "bench-fleet.png")
        written.append(out / "bench-fleet.png")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a JSON file written by python -m bench")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    for path in draw(json.loads(args.results.read_text()), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
