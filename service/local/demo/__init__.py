"""`photo-ingest demo`: the whole pipeline once on the embedded stack, then a checked summary."""
