"""The write side: one eventsourcing Application per bounded context, and their command handlers."""
