"""axe-core for the accessibility tests: installed by make at its pinned version with its
licence, and refused when the archive is not the pinned one."""

import base64
import hashlib

import pytest

from infra import axe_bundle

pytestmark = pytest.mark.unit


def test_make_installed_the_pinned_version_with_its_licence():
    script = axe_bundle.installed_script()
    assert script is not None and axe_bundle.bundle_version(script) == axe_bundle.VERSION
    assert "Mozilla Public License" in (axe_bundle.BUNDLE_DIR / "LICENSE").read_text()


def test_an_archive_that_is_not_the_pinned_one_is_refused():
    archive = b"a tarball from somewhere else"
    with pytest.raises(axe_bundle.IntegrityError, match="nothing was installed"):
        axe_bundle.verified(archive)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(archive).digest()).decode()
    assert axe_bundle.verified(archive, integrity) is archive
