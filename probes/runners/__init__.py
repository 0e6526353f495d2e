"""Runners: one module per check kind (see probes.kinds)."""
