"""Admin pages: adverse events."""
