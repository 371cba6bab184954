"""Personal participant links: the participant id signed with the secret key, with an expiry."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "flourish.surveys.participant-link"


def participant_token(participant_id: str) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(participant_id)


def participant_id_from_token(token: str) -> str:
    """The participant id, or ``signing.BadSignature`` (tampered) / ``SignatureExpired``."""
    return signing.TimestampSigner(salt=_SALT).unsign(
        token, max_age=settings.PARTICIPANT_LINK_MAX_AGE
    )


def participant_survey_path(participant_id: str) -> str:
    return reverse("surveys:survey", kwargs={"token": participant_token(participant_id)})
