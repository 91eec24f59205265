"""Backends for the benchmark only, never for traffic: the in-memory ceiling and the stock saver."""
