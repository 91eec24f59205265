"""The booking agent: appointment store, tools, chat models and the LangGraph graph.

Kept import-free so that processes which only need the store (or nothing at all)
do not pay for importing LangChain.
"""
