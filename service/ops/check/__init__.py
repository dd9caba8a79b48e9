"""`photo-ingest check`: a preflight of the queue, the table and the permissions that changes nothing."""
