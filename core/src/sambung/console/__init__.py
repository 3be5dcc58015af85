"""The operator console: server-rendered pages on the admin listener for the merchant's IT
person (overview, connections, sinks, dead letters, records, CSV import, config)."""
