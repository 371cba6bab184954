"""The PDF copy of what a participant agreed to on the consent page (docs/architecture.md, "The
flow", collect): the consent document's text, version and locale, the data streams granted and
declined, the typed name and time of signature, the trial's title and the SHA-256 of the plan in
force. Pure: no Django; ``surveys.consent_copies`` gathers the stored rows into a ``ConsentCopy``.

The same ``ConsentCopy`` always gives the same bytes (fixed creation date, no random ids), so a
copy rebuilt from stored data for a download has the SHA-256 stored at enrolment. The bytes also
depend on fpdf2's version and the font file: the lock pins the one, the repository holds the other.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# DejaVu Sans, shipped with the code (licence beside it) so a copy looks the same on every
# server: it covers Latin, Greek and Cyrillic, unlike the core PDF fonts (Latin-1 only). It has
# no CJK glyphs, so the typed name is also written, exactly, into the PDF's metadata.
FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"


@dataclass(frozen=True)
class ConsentCopy:
    """What was agreed: ``signed_at`` is timezone-aware; ``granted`` and ``declined`` are the
    data streams' names as the consent page showed them."""

    trial_title: str
    registration_sha256: str
    participant_id: str
    document_version: int
    document_locale: str
    document_text: str
    granted: tuple[str, ...]
    declined: tuple[str, ...]
    signature_name: str
    signed_at: datetime


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def consent_copy_pdf(copy: ConsentCopy) -> bytes:
    """The copy as a PDF; the same ``copy`` always gives the same bytes."""
    if copy.signed_at.tzinfo is None:
        raise ValueError("signed_at must be timezone-aware")
    # Imported here: fpdf2 loads Pillow, fontTools and NumPy, which the web process otherwise
    # starts without (docs/architecture.md, "The layers"); only enrolment and a download need it.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    # The time of signature, not of rendering: a copy rebuilt later is byte for byte the same.
    pdf.set_creation_date(copy.signed_at.astimezone(UTC))
    pdf.set_title(f"Consent: {copy.trial_title}")
    pdf.set_subject(f"Signed by {copy.signature_name} at {_when(copy.signed_at)}")
    pdf.set_lang(copy.document_locale)
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.add_page()

    def line(text: str, size: float = 10, gap: float = 1) -> None:
        pdf.set_font("DejaVu", size=size)
        pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    line(copy.trial_title, size=15, gap=3)
    line(f"Registration (SHA-256 of the plan in force): {copy.registration_sha256 or 'none'}")
    line(f"Participant: {copy.participant_id}", gap=4)
    line(f"Consent document, version {copy.document_version} ({copy.document_locale})", size=12)
    line(copy.document_text, gap=4)
    line("Data streams agreed to", size=12)
    line("\n".join(f"- {name}" for name in copy.granted) or "none")
    line("Data streams declined", size=12)
    line("\n".join(f"- {name}" for name in copy.declined) or "none", gap=4)
    line(f"Signed by typing the name: {copy.signature_name}")
    line(f"Signed at: {_when(copy.signed_at)}")
    return bytes(pdf.output())
