"""The repository explains itself: its comments, docstrings and documents cite code, papers or
``docs/architecture.md``, never notes that are not in it (a design memo, an issue tracker's
numbers, a brief, research notes), which a reader of the repository cannot open."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]

TEXT_SUFFIXES = {".py", ".sh", ".html", ".md", ".txt", ".toml", ".yml", ".yaml", ".cfg", ".js"}
TEXT_NAMES = {"Makefile", "Dockerfile", "run"}
# Notes that live outside the repository, however they are named.
OUTSIDE_NOTES = re.compile(
    r"DESIGN\.md"
    r"|\bissues? #?\d+"
    r"|\b(?:the|developers'?) brief\b"
    r"|(?<![\w./-])(?:shared|research)/"
    r"|\banchors-[\w-]+\.md",
    re.IGNORECASE,
)
# A Markdown document named by its path, or by an upper-case name (README.md, RUNBOOK.md).
DOCUMENT = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.md|[A-Z][A-Z_]*\.md)\b")
URL = re.compile(r"https?://\S+")


def source_files() -> list[Path]:
    """The repository's text files: tracked, or new and not ignored."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("Needs the git checkout to list the repository's files.")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    paths = [REPO / name for name in listed if name]
    return [
        path
        for path in paths
        if path.is_file()
        and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES)
        and path != Path(__file__).resolve()
    ]


def _lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        yield f"{path.relative_to(REPO)}:{number}", URL.sub("", line)


def test_no_file_points_to_notes_outside_the_repository():
    found = [
        f"{where}: {match.group(0)!r}"
        for path in source_files()
        for where, line in _lines(path)
        for match in OUTSIDE_NOTES.finditer(line)
    ]
    assert not found, "Cite code, a paper or docs/architecture.md instead:\n" + "\n".join(found)


def test_every_markdown_document_named_is_in_the_repository():
    files = source_files()
    names = {path.name for path in files}
    missing = [
        f"{where}: {name}"
        for path in files
        for where, line in _lines(path)
        for name in DOCUMENT.findall(line)
        if not ((REPO / name).is_file() if "/" in name else name in names)
    ]
    assert not missing, "These documents are not in the repository:\n" + "\n".join(missing)


def test_the_checks_recognise_what_they_look_for():
    # The patterns must be able to fail: each of these sentences is what the tests above refuse.
    for sentence in (
        "see DESIGN.md §2",
        "as issue 7 asked",
        "per the brief",
        "(see shared/research/anchors-stack-style.md)",
        "research/anchors-flourishing-measures.md",
    ):
        assert OUTSIDE_NOTES.search(sentence), sentence
    assert DOCUMENT.findall("see docs/nowhere.md and NOTES.md") == ["docs/nowhere.md", "NOTES.md"]
    assert not OUTSIDE_NOTES.search("Be kind, and brief; a shared office; .venv/share/flourish")
