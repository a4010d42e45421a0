"""The read side: projections that turn events into PostgreSQL tables, and their runner."""
