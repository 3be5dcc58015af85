"""Delivering onward: the outbox dispatcher, sinks, accounting summaries and dead letters."""
