"""Entry point module of runstream-mock-llm."""
