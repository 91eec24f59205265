"""The side-by-side benchmark (entry points: loadtest/bench.py, loadtest/long_conversation.py)."""
