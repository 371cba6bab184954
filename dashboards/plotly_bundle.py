"""Plotly.js's basic partial bundle for the dashboards, installed from the npm registry.

Why: Dash lazy-loads the full plotly.js that plotly.py ships (every trace type from maps to 3D),
and the browser evaluates all of it before the first figure can draw (``make bench
BENCH_ARGS=dashboard`` measures a dashboard's first load). The dashboards draw only ``scatter``
and ``bar`` traces, which Plotly's official basic bundle (``plotly.js-basic-dist-min``: scatter,
bar, pie; a fraction of the full bundle's size) carries. When ``window.Plotly`` is already
defined, Dash's graph component uses it instead of loading its own, so the bundle is served as
a Dash asset, a plain script ahead of the renderer.

It is a dependency like the Python ones: pinned to the same plotly.js version as plotly.py's own
bundle (a test checks that they move together) and checked against the registry's sha512
integrity before anything is written. ``make`` installs it beside the virtual environment's
packages (``<prefix>/share/flourish/plotly``), the Docker image beside the system's, with the
package's licence. Without it the dashboards still work: Dash falls back to the full bundle.

    python -m dashboards.plotly_bundle          # install (idempotent)
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

PACKAGE = "plotly.js-basic-dist-min"
VERSION = "4.1.1"
# The registry's ``dist.integrity`` for that version (``npm view plotly.js-basic-dist-min@4.1.1
# dist.integrity``).
INTEGRITY = (
    "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/"
    "OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
)
# The trace types the basic bundle registers (plotly.js's partial-bundle list).
TRACE_TYPES = frozenset({"scatter", "bar", "pie"})
SCRIPT = "plotly-basic.min.js"
# Mirrors are honoured as npm itself honours them.
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
BUNDLE_DIR = Path(sys.prefix) / "share" / "flourish" / "plotly"


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
    """The plotly.js version a bundle announces in its banner (``* plotly.js (basic -
    minified) v4.1.1``)."""
    with script.open(encoding="utf-8") as text:
        banner = text.read(200)
    found = re.search(r"plotly\.js.* v(\d+\.\d+\.\d+)", banner)
    if found is None:
        raise ValueError(f"{script} does not start with plotly.js's banner.")
    return found.group(1)


def install(directory: Path = BUNDLE_DIR) -> Path:
    """Download, verify and unpack the bundle and its licence into ``directory``; a bundle of
    the pinned version already there is kept. The files appear whole or not at all."""
    script = directory / SCRIPT
    if script.exists() and bundle_version(script) == VERSION:
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
            # Readable by the unprivileged user that serves it (the image installs as root).
            os.chmod(part.name, 0o644)
            os.replace(part.name, directory / name)
    return script


if __name__ == "__main__":
    try:
        print(f"{PACKAGE} {VERSION} installed at {install()}")
    except (OSError, IntegrityError) as error:
        sys.exit(
            f"Could not install {PACKAGE} {VERSION} from {tarball_url()}: {error}. "
            "Set NPM_CONFIG_REGISTRY to a reachable npm registry or mirror."
        )
