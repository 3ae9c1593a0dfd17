"""runstream-stdout plugin (under construction)."""
