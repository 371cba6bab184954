"""One script from the npm registry, pinned and verified, installed beside the virtual
environment's packages: how the dashboards' Plotly bundle (dashboards/plotly_bundle.py) and the
accessibility tests' axe-core (infra/axe_bundle.py) arrive.

Such a script is a dependency like the Python ones: one version, checked against the registry's
sha512 ``dist.integrity`` before anything is written, unpacked with the package's licence into
``<prefix>/share/flourish/<name>`` by ``make`` (and the Docker image), so nothing downloads at run
or test time. Mirrors are honoured as npm itself honours them (``NPM_CONFIG_REGISTRY``).
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
from dataclasses import dataclass
from pathlib import Path

REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")


class IntegrityError(ValueError):
    """The downloaded archive is not the one the pin names."""


@dataclass(frozen=True)
class NpmBundle:
    package: str
    version: str
    integrity: str
    """The registry's ``dist.integrity`` (``npm view <package>@<version> dist.integrity``)."""
    script: str
    """The script's file name inside the package (``package/<script>``)."""
    banner: str
    """A pattern finding the version (its one group) in the script's first 200 characters."""
    directory: Path

    def tarball_url(self) -> str:
        return f"{REGISTRY}/{self.package}/-/{self.package}-{self.version}.tgz"

    def verified(self, archive: bytes, integrity: str | None = None) -> bytes:
        """``archive`` unchanged when its sha512 matches the Subresource-Integrity string
        (the pin unless another is given)."""
        algorithm, _, expected = (integrity or self.integrity).partition("-")
        if algorithm != "sha512":
            raise IntegrityError(f"Unsupported integrity algorithm {algorithm!r}.")
        actual = base64.b64encode(hashlib.sha512(archive).digest()).decode()
        if actual != expected:
            raise IntegrityError(
                f"{self.package}-{self.version}.tgz does not match its pinned sha512 (got "
                f"{actual}); nothing was installed."
            )
        return archive

    def script_version(self, script: Path) -> str:
        """The version a script announces in its banner."""
        with script.open(encoding="utf-8") as text:
            found = re.search(self.banner, text.read(200))
        if found is None:
            raise ValueError(f"{script} does not start with {self.package}'s banner.")
        return found.group(1)

    @property
    def path(self) -> Path:
        return self.directory / self.script

    def installed_script(self) -> Path | None:
        """The pinned version's script when it is installed, else None."""
        return (
            self.path
            if self.path.exists() and self.script_version(self.path) == self.version
            else None
        )

    def install(self) -> Path:
        """Download, verify and unpack the script and its licence; a script of the pinned
        version already there is kept. The files appear whole or not at all."""
        if self.installed_script() is not None:
            return self.path
        with urllib.request.urlopen(self.tarball_url(), timeout=120) as answer:
            archive = self.verified(answer.read())
        self.directory.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            # The script last: its presence is what says the bundle is installed.
            for member, name in (
                ("package/LICENSE", "LICENSE"),
                (f"package/{self.script}", self.script),
            ):
                content = tar.extractfile(member).read()
                with tempfile.NamedTemporaryFile(dir=self.directory, delete=False) as part:
                    part.write(content)
                # Readable by the unprivileged user that serves it (the image installs as root).
                os.chmod(part.name, 0o644)
                os.replace(part.name, self.directory / name)
        return self.path

    def install_or_exit(self) -> None:
        """``python -m <module>``: install, or exit saying what to do."""
        try:
            print(f"{self.package} {self.version} installed at {self.install()}")
        except (OSError, IntegrityError) as error:
            sys.exit(
                f"Could not install {self.package} {self.version} from {self.tarball_url()}: "
                f"{error}. Set NPM_CONFIG_REGISTRY to a reachable npm registry or mirror."
            )


def share_directory(name: str) -> Path:
    """Where ``make`` installs the bundle ``name``: beside the environment's packages."""
    return Path(sys.prefix) / "share" / "flourish" / name
