"""`python -m bench.partiql`: kept for the commands that name it; it is `python -m bench` with the same flags.

It used to run the benchmark on a subclass of the endpoint that answered `BatchExecuteStatement`, so that
photo-ingest's `WRITE_MODE=batch` could be measured. bench/endpoint.py now serves the PartiQL INSERTs itself
(the same semantics: `DuplicateItem` per statement, 1-25 statements, no two on one item), and `python -m bench`
has the `batch` contender (photo-ingest with `WRITE_MODE=batch`) and `pair-batch-node`. To run every
photo-ingest case in batch mode, as this module's users did, pass `--worker-env WRITE_MODE=batch`.
"""

from __future__ import annotations

import sys

from bench import __main__ as bench


def main(argv: list[str]) -> int:
    return bench.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
