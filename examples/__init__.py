"""runstream examples."""
