"""runstream-mock-llm plugin (under construction)."""
