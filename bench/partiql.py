"""`python -m bench.partiql`: the benchmark, on an endpoint that also answers `BatchExecuteStatement`, so that
photo-ingest's `WRITE_MODE=batch` can be measured (`--worker-env WRITE_MODE=batch`). Every flag is
`python -m bench`'s.

bench/endpoint.py serves `PutItem` but not PartiQL. This module adds, without changing that file, the one
statement photo-ingest sends: `INSERT INTO "<table>" VALUE {'<name>': ?, ...}` with `Parameters`. As DynamoDB
does, an INSERT whose key exists answers `DuplicateItem` for that statement alone and overwrites nothing; a
batch holds 1-25 statements. Two statements on one item fail the whole call, as `BatchWriteItem`'s do (what
`BatchExecuteStatement` does with them is not documented; photo-ingest never sends them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from bench import endpoint, runner
from bench.endpoint import ApiError, HttpConnection

BATCH_MAX = 25
INSERT = re.compile(r'^INSERT INTO "(?P<table>[^"]+)" VALUE \{(?P<body>.*)\}$', re.DOTALL)
PLACEHOLDER = re.compile(r"'([^']+)'\s*:\s*\?")


class PartiqlEndpoint(endpoint.Endpoint):
    def __init__(self, port: int, latency_ms: float, hash_key: str) -> None:
        super().__init__(port, latency_ms, hash_key)
        self.ddb_ops["BatchExecuteStatement"] = self.batch_execute_statement

    def batch_execute_statement(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        statements = params.get("Statements") or []
        if not 1 <= len(statements) <= BATCH_MAX:
            raise ApiError("ValidationException", f"Statements must hold 1 to {BATCH_MAX} statements")
        parsed = [self.parse(statement) for statement in statements]
        keys = [self.key_of(item) for _, item in parsed]
        if len(set(keys)) != len(keys):
            raise ApiError("ValidationException", "Provided list of item keys contains duplicates")
        return {"Responses": [self.insert(name, item) for name, item in parsed]}

    def parse(self, statement: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        match = INSERT.match(str(statement.get("Statement", "")))
        names = PLACEHOLDER.findall(match["body"]) if match else []
        values = statement.get("Parameters") or []
        if match is None or len(names) != len(values):
            raise ApiError("ValidationException", f"the bench endpoint does not support {statement!r}")
        return match["table"], dict(zip(names, values, strict=True))

    def insert(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        table = self.tables.get(name)
        if table is None:
            return {"Error": {"Code": "ResourceNotFound", "Message": "Requested resource not found"}}
        key = self.key_of(item)
        if key in table:
            self.count("insert.duplicate")
            return {"TableName": name, "Error": {"Code": "DuplicateItem", "Message": "Duplicate primary key"}}
        table[key] = item
        self.table_keys[name].append(key)
        self.count("put.written")
        return {"TableName": name}


def start_endpoint(workdir: Any) -> tuple[runner.Proc, runner.Control]:
    """bench.runner.start_endpoint, starting this module's endpoint instead."""
    argv = [sys.executable, "-m", "bench.partiql", "--endpoint", "--queue", runner.QUEUE, "--table", runner.TABLE]
    proc = runner.spawn("endpoint", argv, runner.base_env(), workdir, stdout=subprocess.PIPE)  # type: ignore[arg-type]
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline()
    if not line:
        raise runner.BenchError(f"the endpoint did not start:\n{proc.stderr_tail()}")
    return proc, runner.Control(int(json.loads(line)["port"]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--endpoint"]:
        endpoint.Endpoint = PartiqlEndpoint  # type: ignore[misc]
        endpoint.main(argv[1:])
        return 0
    from bench import __main__ as bench

    runner.start_endpoint = start_endpoint
    return bench.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
