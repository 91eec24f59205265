"""Offline operations run from the command line: migrating between backends."""
