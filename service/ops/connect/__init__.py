"""`photo-ingest connect-bucket`: point an existing bucket at the queue, keeping its other notifications."""
