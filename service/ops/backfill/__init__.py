"""`photo-ingest backfill`: the items of objects already in a bucket, through the core, resumable."""
