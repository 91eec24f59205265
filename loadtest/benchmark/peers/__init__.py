"""The same booking graph and load under peer runtimes (entry point: loadtest/peers.py).

- venvs: each peer's throwaway virtualenv, at the versions pinned there
- graph_entry: the compiled graph (no checkpointer) a peer imports by path
- servers: start and stop `langgraph dev` and Aegra (on a throwaway PostgreSQL)
- measure: warm-up, the closed-loop workload, server CPU, the state check
- report: peers.md, peers.csv, peers_runs.csv and peers.png
"""
