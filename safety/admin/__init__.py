"""The safety app's admin pages, one module per part: adverse events, participant flags, the
arms' canary checks."""

from safety.admin import adverse_events, canaries, flags  # noqa: F401
