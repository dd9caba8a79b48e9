"""The operator's commands: `check`, `health` (and its probe, `liveness`), `backfill`, `redrive`, `connect-bucket`."""
