"""CareBridge domain model: aggregates, their events and pure policies. No I/O, no clock reads."""
