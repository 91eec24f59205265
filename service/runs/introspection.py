"""What a client may learn about the graph an assistant runs: its drawable graph, its
schemas and its subgraphs, in the shapes of LangGraph Server's assistant endpoints.

The graph is fixed for the life of a worker, so each answer is computed once.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from pydantic import TypeAdapter


class GraphIntrospection:
    """The one graph's drawings and schemas, memoized."""

    def __init__(self, graph: CompiledStateGraph, graph_id: str) -> None:
        self.graph = graph
        self.graph_id = graph_id

    @functools.cache  # noqa: B019 - one instance per worker, for its lifetime
    def drawing(self, xray: bool | int) -> dict[str, Any]:
        """Nodes and edges (`xray`: subgraphs drawn inside, to that depth)."""
        return self.graph.get_graph(xray=xray).to_json()

    @functools.cache  # noqa: B019
    def schemas(self) -> dict[str, Any]:
        return {"graph_id": self.graph_id, **_schemas(self.graph)}

    def subgraphs(self, namespace: str | None, recurse: bool) -> dict[str, Any]:
        """Each subgraph's schemas by namespace (none in a graph without subgraphs)."""
        return {
            name: _schemas(subgraph)
            for name, subgraph in self.graph.get_subgraphs(namespace=namespace, recurse=recurse)
        }


def _schemas(graph: Any) -> dict[str, Any]:
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    with warnings.catch_warnings():
        # `config_schema` is deprecated in favour of the context; the API still has it.
        warnings.simplefilter("ignore")
        config = graph.get_config_jsonschema()
    return {
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": TypeAdapter(state).json_schema() if state is not None else None,
        "config_schema": config,
        "context_schema": graph.get_context_jsonschema(),
    }
