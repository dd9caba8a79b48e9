"""A deterministic simulation of photo-ingest: the real worker, core, AWS edge and Lambda handler, run on
virtual time against simulated SQS, DynamoDB and S3 with injected faults, with invariants checked on every seed.
docs/reliability.md, "The simulator"; `python -m tests.sim --help`."""
