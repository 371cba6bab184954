"""axe-core for the accessibility tests: installed by make at its pinned version with its
licence."""

import pytest

from infra.axe_bundle import BUNDLE

pytestmark = pytest.mark.unit


def test_make_installed_the_pinned_version_with_its_licence():
    script = BUNDLE.installed_script()
    assert script is not None and BUNDLE.script_version(script) == BUNDLE.version
    assert "Mozilla Public License" in (BUNDLE.directory / "LICENSE").read_text()
