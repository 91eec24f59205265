"""Serving HTTP: the Gunicorn worker class and its connection handling."""
