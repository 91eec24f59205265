"""Metrics, the scrape, and logging: what every layer reports through."""
