"""Personal participant links, signed with the secret key and expiring.

A survey link names the participant and the wave it invites to, so a link that was already used
for its wave is recognised; the "my data and consent" link names the participant only. The front
door's pass and confirmation link (below) name no participant: there is none yet.
"""

from dataclasses import asdict, dataclass

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


# The front door (surveys.front_door): a screened person's pass to the consent page, and the
# e-mail confirmation link that enrols them. Signed, not encrypted: the confirmation link carries
# the address and typed name, but it goes only to that address, and nothing is stored until it
# is opened, so a mistyped or a stranger's address enrols nobody.
_SCREENED_SALT = "flourish.surveys.screened"
_CONFIRMATION_SALT = "flourish.surveys.enrolment-confirmation"
# Long enough to answer at leisure, short enough that an old pass or mail cannot be replayed
# months later.
SCREENED_MAX_AGE = 60 * 60 * 24
CONFIRMATION_MAX_AGE = 60 * 60 * 24 * 3


@dataclass(frozen=True)
class Screened:
    """An eligible screening, the stratum the recruitment link named, and the chosen language."""

    screening_id: int
    community: str
    language: str


@dataclass(frozen=True)
class EnrolmentRequest:
    """What the consent page collected, waiting for the e-mail address to be confirmed."""

    trial_id: int
    screening_id: int
    community: str
    language: str
    document_id: int
    scopes: tuple[str, ...]
    email: str
    name: str
    signed_at: str  # ISO 8601


def screened_token(screened: Screened) -> str:
    return signing.TimestampSigner(salt=_SCREENED_SALT).sign_object(asdict(screened), compress=True)


def screened_from_token(token: str) -> Screened:
    """The pass's content, or ``signing.BadSignature`` / ``SignatureExpired``."""
    content = signing.TimestampSigner(salt=_SCREENED_SALT).unsign_object(
        token, max_age=SCREENED_MAX_AGE
    )
    try:
        return Screened(
            screening_id=int(content["screening_id"]),
            community=str(content["community"]),
            language=str(content["language"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise signing.BadSignature("Not a screening pass.") from error


def confirmation_token(request: EnrolmentRequest) -> str:
    return signing.TimestampSigner(salt=_CONFIRMATION_SALT).sign_object(
        asdict(request), compress=True
    )


def enrolment_request_from_token(token: str) -> EnrolmentRequest:
    """The confirmation link's content, or ``signing.BadSignature`` / ``SignatureExpired``."""
    content = signing.TimestampSigner(salt=_CONFIRMATION_SALT).unsign_object(
        token, max_age=CONFIRMATION_MAX_AGE
    )
    try:
        fields = {name: content[name] for name in EnrolmentRequest.__dataclass_fields__}
        return EnrolmentRequest(
            **fields
            | {"scopes": tuple(map(str, fields["scopes"]))}
            | {k: int(fields[k]) for k in ("trial_id", "screening_id", "document_id")}
        )
    except (KeyError, TypeError, ValueError) as error:
        raise signing.BadSignature("Not an enrolment confirmation link.") from error
