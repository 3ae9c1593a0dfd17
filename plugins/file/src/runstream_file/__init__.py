"""runstream-file plugin (under construction)."""
