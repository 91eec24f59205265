"""The Locust 10-to-100-user profile with its SLO gates (entry point: loadtest/run.py)."""
