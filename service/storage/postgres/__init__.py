"""The PostgreSQL backend: the same interface for several hosts."""
