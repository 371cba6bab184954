"""Personal participant links, signed with the secret key and expiring.

A survey link names the participant and the wave it invites to, so a link that was already used
for its wave is recognised; the "my data and consent" link names the participant only.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SURVEY_SALT = "flourish.surveys.survey-link"
_DATA_SALT = "flourish.surveys.my-data-link"


@dataclass(frozen=True)
class SurveyLink:
    participant_id: str
    wave_id: int


def survey_token(participant_id: str, wave_id: int) -> str:
    return signing.TimestampSigner(salt=_SURVEY_SALT).sign_object(
        {"p": participant_id, "w": wave_id}, compress=True
    )


def survey_link_from_token(token: str) -> SurveyLink:
    """The link's content, or ``signing.BadSignature`` (tampered) / ``SignatureExpired``."""
    content = signing.TimestampSigner(salt=_SURVEY_SALT).unsign_object(
        token, max_age=settings.PARTICIPANT_LINK_MAX_AGE
    )
    try:
        return SurveyLink(participant_id=str(content["p"]), wave_id=int(content["w"]))
    except (KeyError, TypeError, ValueError) as error:
        raise signing.BadSignature("The link's content is not a survey link.") from error


def data_token(participant_id: str) -> str:
    return signing.TimestampSigner(salt=_DATA_SALT).sign(participant_id)


def participant_id_from_data_token(token: str) -> str:
    return signing.TimestampSigner(salt=_DATA_SALT).unsign(
        token, max_age=settings.PARTICIPANT_LINK_MAX_AGE
    )


def survey_path(participant_id: str, wave_id: int) -> str:
    return reverse("surveys:survey", kwargs={"token": survey_token(participant_id, wave_id)})


def data_path(participant_id: str) -> str:
    return reverse("surveys:my_data", kwargs={"token": data_token(participant_id)})


def absolute(path: str) -> str:
    """A path as a full address participants can open from an e-mail."""
    return settings.SITE_URL.rstrip("/") + path
