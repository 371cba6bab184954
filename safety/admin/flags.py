"""Admin pages: flags."""
