"""`python -m bench.trace_render`: run `photo-ingest demo` with its traces sent to an OTLP/HTTP receiver in this
process, and draw the traces it received as text trees (docs/observability.md shows one run).

    python -m bench.trace_render [--limit 4]

Each tree is one trace: a span's name, kind, duration and attributes (the `messaging.`, `db.` and `photo_ingest.`
prefixes left out), its links (`↗` the context it links to), and its events (`·`, with how long the wait took).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

from tests.otlp_receiver import attributes, otlp_receiver

KINDS = {0: "", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
SHOWN = ("messaging.message.id", "messaging.batch.message_count", "messaging.aws_sqs.receive_count", "db.system")


def label(span: Any) -> str:
    found = attributes(span)
    shown = {name: value for name, value in found.items() if name in SHOWN or name.startswith("photo_ingest.")}
    text = " ".join(f"{name.rpartition('.')[2]}={value}" for name, value in shown.items())
    duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    return f"{span.name}  [{KINDS[span.kind]}, {duration_ms:.1f} ms]  {text}".rstrip()


def tree(span: Any, children: dict[bytes, list[Any]], depth: int = 0) -> list[str]:
    pad = "    " * depth
    lines = [f"{pad}{'└─ ' if depth else ''}{label(span)}"]
    lines += [f"{pad}    ↗ link: trace {link.trace_id.hex()} span {link.span_id.hex()}" for link in span.links]
    for event in span.events:
        lines.append(f"{pad}    · {event.name} {attributes(event).get('wait_ms', '')} ms".rstrip())
    for child in sorted(children[span.span_id], key=lambda child: child.start_time_unix_nano):
        lines += tree(child, children, depth + 1)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_render", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4, help="how many message traces to draw")
    args = parser.parse_args(argv)
    with otlp_receiver() as (endpoint, received):
        env = os.environ | {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "photo-ingest-demo"}
        subprocess.run([sys.executable, "-m", "service", "demo"], env=env, check=True, capture_output=True)
    children: dict[bytes, list[Any]] = defaultdict(list)
    for span in received.spans:
        children[span.parent_span_id].append(span)
    roots = sorted(children[b""], key=lambda span: span.start_time_unix_nano)
    messages = [root for root in roots if root.name.startswith("process ")]
    receives = [root for root in roots if root.name.startswith("receive ") and root.attributes]
    print(f"{len(received.spans)} spans, {len(roots)} traces; the first receive that got messages, and")
    print(f"the first {args.limit} messages:\n")
    for root in [*[r for r in receives if attributes(r).get("messaging.batch.message_count")][:1], *messages]:
        print("\n".join(tree(root, children)) + "\n")
        if root in messages and messages.index(root) + 1 >= args.limit:
            break


if __name__ == "__main__":
    main()
