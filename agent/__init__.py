"""The replication agent: LangGraph graph, nodes, prompts, recipes and the model client."""
