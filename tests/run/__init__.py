"""Sending: the runner, pacing, the rate finder, reconciliation."""
