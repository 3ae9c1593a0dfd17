"""Entry point module of runstream-file."""
