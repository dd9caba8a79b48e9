"""`photo-ingest redrive`: the dead-letter queue's messages back to the queue, send first and delete after."""
