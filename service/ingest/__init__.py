"""The core every runtime shares: what happens to one message, whoever delivered it.

Parse and validate the body (`events`), compute the photoId (`ids`), build the item (`items`), put it once per record
through the store it is handed, and decide the disposition (`outcomes`). `settle.Ingest` is the one entry.
"""
