"""Admin pages: canaries."""
