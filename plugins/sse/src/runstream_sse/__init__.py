"""runstream-sse plugin (under construction)."""
