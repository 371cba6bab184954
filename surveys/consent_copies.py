"""The consent copy's reads and writes: what a participant agreed to at enrolment, gathered from
the stored rows into a ``surveys.consent_copy.ConsentCopy``, and the one e-mail that carries it.

What the copy names is kept with the contact details (``ParticipantContact``: the typed name,
the time of signing, the SHA-256 of the plan in force and of the copy), so erasure deletes it
with them and a copy rebuilt for a download is the one that was e-mailed.
"""

import hashlib
import logging

from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from surveys.consent_copy import ConsentCopy, consent_copy_pdf
from surveys.links import absolute, data_path
from trials.models import ConsentGrant, ConsentScope, Participant, ParticipantContact
from trials.selectors import preregistration_in_force

logger = logging.getLogger(__name__)


def _label(scope: str) -> str:
    # The scopes' names in code, not a translation: a changed translation must not change the
    # bytes of a copy rebuilt later. The document's own text says what each stream means.
    return str(ConsentScope(scope).label).lower() if scope in ConsentScope.values else scope


def consent_copy_of(contact: ParticipantContact) -> ConsentCopy:
    """The copy of what ``contact``'s participant agreed to when enrolling: the grants written
    with the enrolment (``trials.services.participant_enrol`` dates them ``enrolled_at``), not
    those changed later on the my-data page."""
    participant = contact.participant
    grants = list(
        ConsentGrant.objects.filter(participant=participant, granted_at=participant.enrolled_at)
        .select_related("document")
        .order_by("scope")
    )
    if not grants:
        raise ValueError("This participant has no consent from their enrolment.")
    document = grants[0].document
    granted = [grant.scope for grant in grants]
    offered = document.scopes or ConsentScope.values
    return ConsentCopy(
        trial_title=participant.trial.title,
        registration_sha256=contact.registration_sha256,
        participant_id=str(participant.pk),
        document_version=document.version,
        document_locale=document.locale,
        document_text=document.text,
        granted=tuple(_label(scope) for scope in granted),
        declined=tuple(_label(scope) for scope in offered if scope not in granted),
        signature_name=contact.signature_name,
        signed_at=contact.signed_at or participant.enrolled_at,
    )


def consent_copy_made(*, participant: Participant) -> bool:
    return (
        ParticipantContact.objects.filter(participant=participant)
        .exclude(consent_copy_sha256="")
        .exists()
    )


def consent_copy_download(*, participant: Participant) -> bytes | None:
    """The participant's copy rebuilt from the stored rows, or None when none was made."""
    contact = ParticipantContact.objects.filter(participant=participant).first()
    if contact is None or not contact.consent_copy_sha256:
        return None
    pdf = consent_copy_pdf(consent_copy_of(contact))
    if hashlib.sha256(pdf).hexdigest() != contact.consent_copy_sha256:
        # The font file or fpdf2's version changed since the copy was made.
        logger.warning("The consent copy of %s no longer hashes as stored", participant.pk)
    return pdf


def consent_copy_send(*, participant: Participant) -> bool:
    """Make the copy, store its SHA-256 and that of the plan in force, and e-mail it, once per
    enrolment: a second call (a second click of the confirmation link) sends nothing. Returns
    whether it sent. The e-mail goes after the commit, so a mail server that is down loses the
    e-mail, never the stored copy (it stays downloadable from the my-data page)."""
    with transaction.atomic():
        contact = (
            ParticipantContact.objects.select_for_update()
            .select_related("participant__trial")
            .get(participant=participant)
        )
        if contact.consent_copy_sha256:
            return False
        in_force = preregistration_in_force(contact.participant.trial)
        contact.registration_sha256 = in_force.sha256 if in_force else ""
        pdf = consent_copy_pdf(consent_copy_of(contact))
        contact.consent_copy_sha256 = hashlib.sha256(pdf).hexdigest()
        contact.save(update_fields=["registration_sha256", "consent_copy_sha256"])
        context = {
            "trial": contact.participant.trial,
            "name": contact.signature_name,
            "data_url": absolute(data_path(participant.pk)),
            "sha256": contact.consent_copy_sha256,
        }
        with translation.override(participant.locale):
            subject = render_to_string("surveys/email/consent_copy_subject.txt", context).strip()
            body = render_to_string("surveys/email/consent_copy_body.txt", context)
        message = EmailMessage(subject=subject, body=body, to=[contact.email])
        message.attach("consent.pdf", pdf, "application/pdf")
        transaction.on_commit(message.send, robust=True)
    return True
