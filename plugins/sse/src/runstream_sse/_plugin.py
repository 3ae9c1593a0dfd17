"""Entry point module of runstream-sse."""
