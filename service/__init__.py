"""Booking agent service: a LangGraph agent on several workers sharing one WAL SQLite file."""

__version__ = "0.1.0"
