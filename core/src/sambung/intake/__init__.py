"""Taking events in: webhooks, polling, file drop and upload, and the CSV importer."""
