"""axe-core, the accessibility rules engine the browser tests inject into every participant page
(tests/browser/test_accessibility.py), installed from the npm registry.

It is a test dependency like the Python ones: pinned to one version and checked against the
registry's sha512 integrity before anything is written, as the dashboards' Plotly bundle is
(dashboards/plotly_bundle.py). ``make`` installs it beside the virtual environment's packages
(``<prefix>/share/flourish/axe``) with its licence (MPL-2.0), so a test run downloads nothing.
Only the tests use it; the platform never serves it.

    python -m infra.axe_bundle          # install (idempotent)
"""

import base64
import hashlib
import io
import os
import re
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "axe-core"
VERSION = "4.14.1"
# The registry's ``dist.integrity`` for that version (``npm view axe-core@4.14.1 dist.integrity``).
INTEGRITY = (
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37"
    "OgudVGtQ=="
)
SCRIPT = "axe.min.js"
# Mirrors are honoured as npm itself honours them.
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
BUNDLE_DIR = Path(sys.prefix) / "share" / "flourish" / "axe"


class IntegrityError(ValueError):
    """The downloaded archive is not the one the pin names."""


def tarball_url() -> str:
    return f"{REGISTRY}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def verified(archive: bytes, integrity: str = INTEGRITY) -> bytes:
    """``archive`` unchanged when its sha512 matches the Subresource-Integrity string."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise IntegrityError(f"Unsupported integrity algorithm {algorithm!r}.")
    actual = base64.b64encode(hashlib.sha512(archive).digest()).decode()
    if actual != expected:
        raise IntegrityError(
            f"{PACKAGE}-{VERSION}.tgz does not match its pinned sha512 (got {actual}); "
            "nothing was installed."
        )
    return archive


def bundle_version(script: Path) -> str:
    """The version a bundle announces in its banner (``/*! axe v4.14.1``)."""
    with script.open(encoding="utf-8") as text:
        banner = text.read(100)
    found = re.search(r"axe v(\d+\.\d+\.\d+)", banner)
    if found is None:
        raise ValueError(f"{script} does not start with axe-core's banner.")
    return found.group(1)


def installed_script(directory: Path = BUNDLE_DIR) -> Path | None:
    """The pinned version's script when it is installed, else None."""
    script = directory / SCRIPT
    return script if script.exists() and bundle_version(script) == VERSION else None


def install(directory: Path = BUNDLE_DIR) -> Path:
    """Download, verify and unpack the script and its licence into ``directory``; a script of
    the pinned version already there is kept. The files appear whole or not at all."""
    script = installed_script(directory)
    if script is not None:
        return script
    with urllib.request.urlopen(tarball_url(), timeout=120) as answer:
        archive = verified(answer.read())
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        # The script last: its presence is what says the bundle is installed.
        for member, name in (("package/LICENSE", "LICENSE"), (f"package/{SCRIPT}", SCRIPT)):
            content = tar.extractfile(member).read()
            with tempfile.NamedTemporaryFile(dir=directory, delete=False) as part:
                part.write(content)
            os.chmod(part.name, 0o644)
            os.replace(part.name, directory / name)
    return directory / SCRIPT


if __name__ == "__main__":
    try:
        print(f"{PACKAGE} {VERSION} installed at {install()}")
    except (OSError, IntegrityError) as error:
        sys.exit(
            f"Could not install {PACKAGE} {VERSION} from {tarball_url()}: {error}. "
            "Set NPM_CONFIG_REGISTRY to a reachable npm registry or mirror."
        )
