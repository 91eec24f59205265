"""The SQLite backend: one WAL file shared by every worker of one host."""
