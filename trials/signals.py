"""Signals other apps answer, so trials/ need not know what they store about a participant."""

from django.dispatch import Signal

# Sent inside the erasure transaction with ``participant``: every app deletes what it holds
# about that participant (surveys deletes responses and scores).
participant_erased = Signal()
