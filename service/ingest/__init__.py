"""The core every runtime shares: what happens to one message, whoever delivered it.

Parse, validate and trust-check the body (`events`, reading it strictly with `fields` and checking it against
`trust`: docs/security.md), compute the photoId (`ids`), build the item (`items`), put it once per record
through the store it is handed, and decide the disposition (`outcomes`). `settle.Ingest` is the one entry.
"""
