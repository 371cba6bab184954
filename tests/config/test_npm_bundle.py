"""A pinned npm script (config.npm_bundle): an archive that is not the pinned one is refused
before anything is written, and a script of another version does not count as installed."""

import base64
import hashlib

import pytest

from config.npm_bundle import IntegrityError, NpmBundle

pytestmark = pytest.mark.unit


def _bundle(directory, archive: bytes = b"the pinned archive") -> NpmBundle:
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(archive).digest()).decode()
    return NpmBundle("some-package", "1.2.3", integrity, "x.min.js", r"x v(\S+)", directory)


def test_an_archive_that_is_not_the_pinned_one_is_refused(tmp_path):
    bundle = _bundle(tmp_path)
    with pytest.raises(IntegrityError, match="nothing was installed"):
        bundle.verified(b"a tarball from somewhere else")
    assert bundle.verified(b"the pinned archive") == b"the pinned archive"
    assert not list(tmp_path.iterdir())


def test_only_the_pinned_version_counts_as_installed(tmp_path):
    bundle = _bundle(tmp_path)
    assert bundle.installed_script() is None
    bundle.path.write_text("/*! x v1.2.2 */")
    assert bundle.installed_script() is None
    bundle.path.write_text("/*! x v1.2.3 */")
    assert bundle.installed_script() == bundle.path
