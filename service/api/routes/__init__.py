"""Thin routers: parse, check ownership, hand the work to runs or storage."""
