"""A new version of the consent document pauses the streams it lists until each participant
consents again (trials.selectors.consent_standing, trials.services.consent_renew)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from tests.trials.factories import enrolling_trial
from trials.models import ConsentDocument, ConsentScope, Participant, Trial, TrialEvent
from trials.selectors import (
    consent_active,
    consent_renewal_due,
    consent_renewals,
    consent_standing,
)
from trials.services import consent_renew, participant_enrol

pytestmark = pytest.mark.django_db

SURVEYS, TELEMETRY = ConsentScope.SURVEYS, ConsentScope.TELEMETRY


@pytest.fixture
def trial() -> Trial:
    return enrolling_trial()


def _enrol(trial: Trial, email: str, locale: str = "en", version: int = 1) -> Participant:
    document = ConsentDocument.objects.filter(trial=trial, version=version).first()
    return participant_enrol(
        trial=trial,
        email=email,
        consent_document=document,
        scopes=[SURVEYS, TELEMETRY],
        locale=locale,
    )


def _publish(trial: Trial, scopes=(SURVEYS, TELEMETRY), locale: str = "en") -> ConsentDocument:
    return ConsentDocument.objects.create(
        trial=trial, version=2, locale=locale, text="Consent, new terms.", scopes=list(scopes)
    )


def test_a_new_version_pauses_the_streams_it_lists_until_the_participant_renews(trial):
    person = _enrol(trial, "a@example.org")
    assert consent_active(person, SURVEYS) and consent_active(person, TELEMETRY)
    assert consent_renewal_due(person) is None
    second = _publish(trial)
    assert not consent_active(person, SURVEYS)
    # The federated window asks the same rule before it uses a device's telemetry reply.
    assert not consent_active(person, TELEMETRY)
    assert not consent_standing().filter(participant=person).exists()
    assert consent_renewal_due(person) == second

    grants = consent_renew(participant=person, document=second, scopes=[SURVEYS, TELEMETRY])

    assert {g.scope for g in grants} == {SURVEYS, TELEMETRY}
    assert consent_active(person, SURVEYS) and consent_active(person, TELEMETRY)
    assert consent_renewal_due(person) is None
    # The old grant ends at the instant the new one starts: the stream never had a gap.
    for grant in grants:
        old = person.consents.get(scope=grant.scope, document__version=1)
        assert old.revoked_at == grant.granted_at
    renewed = TrialEvent.objects.filter(kind=TrialEvent.Kind.CONSENT_GRANTED)
    assert sorted(e.detail["scope"] for e in renewed if e.detail.get("renewed")) == [
        SURVEYS,
        TELEMETRY,
    ]
    # Renewing twice changes nothing.
    consent_renew(participant=person, document=second, scopes=[SURVEYS, TELEMETRY])
    assert person.consents.filter(document=second).count() == 2


def test_declining_an_optional_stream_when_renewing_stops_it(trial):
    person = _enrol(trial, "a@example.org")
    second = _publish(trial)
    consent_renew(participant=person, document=second, scopes=[SURVEYS])
    assert consent_active(person, SURVEYS)
    assert not consent_active(person, TELEMETRY)
    assert not person.consents.filter(scope=TELEMETRY, revoked_at__isnull=True).exists()
    assert TrialEvent.objects.filter(kind=TrialEvent.Kind.CONSENT_REVOKED).count() == 1
    assert consent_renewal_due(person) is None


def test_surveys_cannot_be_declined_and_only_the_latest_version_is_signed(trial):
    person = _enrol(trial, "a@example.org")
    first = ConsentDocument.objects.get(trial=trial, version=1)
    second = _publish(trial)
    with pytest.raises(ValidationError, match="withdraw"):
        consent_renew(participant=person, document=second, scopes=[TELEMETRY])
    with pytest.raises(ValidationError, match="version 2"):
        consent_renew(participant=person, document=first, scopes=[SURVEYS])
    assert not consent_active(person, SURVEYS)


def test_a_stream_the_new_version_does_not_list_carries_on(trial):
    person = _enrol(trial, "a@example.org")
    _publish(trial, scopes=[SURVEYS])
    assert not consent_active(person, SURVEYS)
    assert consent_active(person, TELEMETRY)


def test_people_who_consented_under_the_new_version_are_unaffected(trial):
    _publish(trial)
    newcomer = _enrol(trial, "new@example.org", version=2)
    assert consent_active(newcomer, SURVEYS) and consent_active(newcomer, TELEMETRY)
    assert consent_renewal_due(newcomer) is None


def test_the_version_that_counts_is_the_one_in_the_participants_language(trial):
    ConsentDocument.objects.create(
        trial=trial, version=1, locale="de", text="Einwilligung.", scopes=[SURVEYS, TELEMETRY]
    )
    german = _enrol(trial, "de@example.org", locale="de")
    french = _enrol(trial, "fr@example.org", locale="fr")  # no document in French
    second = _publish(trial)  # English only, so far
    assert consent_active(german, SURVEYS)
    assert not consent_active(french, SURVEYS)
    assert consent_renewal_due(french) == second
    german_second = _publish(trial, locale="de")
    assert not consent_active(german, SURVEYS)
    assert consent_renewal_due(german) == german_second


def test_the_document_counts_who_renewed_and_who_is_still_waiting(trial):
    renewing, waiting = _enrol(trial, "a@example.org"), _enrol(trial, "b@example.org")
    second = _publish(trial)
    _enrol(trial, "new@example.org", version=2)
    consent_renew(participant=renewing, document=second, scopes=[SURVEYS])
    counts = consent_renewals(second)
    assert (counts.renewed, counts.waiting) == (1, 1)
    assert consent_renewal_due(waiting) == second


def test_the_consent_documents_admin_page_shows_how_many_consented_again(client, trial):
    person = _enrol(trial, "a@example.org")
    second = _publish(trial)
    consent_renew(participant=person, document=second, scopes=[SURVEYS])
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.org", "pw"))
    page = client.get(f"/admin/trials/consentdocument/{second.pk}/change/")
    assert page.status_code == 200
    assert "1 participant(s) consented again under this version; 0 in the trial" in (
        page.content.decode()
    )
    assert client.get("/admin/trials/consentdocument/add/").status_code == 200
