"""FastAPI LLM streaming example."""
