"""Tier 3 on remote worker processes: Dramatiq with a Redis broker (imported only when a broker is configured)."""
