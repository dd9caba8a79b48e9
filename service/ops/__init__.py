"""The operator's commands: `check`, `health`, `backfill` and `redrive`."""
