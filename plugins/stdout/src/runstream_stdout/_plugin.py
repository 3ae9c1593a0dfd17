"""Entry point module of runstream-stdout."""
