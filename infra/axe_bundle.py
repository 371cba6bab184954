"""axe-core, the accessibility rules engine the browser tests inject into every participant page
(tests/browser/test_accessibility.py), installed from the npm registry.

It is a test dependency, installed by ``make`` as config/npm_bundle.py installs a pinned npm
script (like the dashboards' Plotly bundle), with its licence (MPL-2.0), so a test run downloads
nothing.
Only the tests use it; the platform never serves it.

    python -m infra.axe_bundle          # install (idempotent)
"""

from config.npm_bundle import NpmBundle, share_directory

BUNDLE = NpmBundle(
    package="axe-core",
    version="4.14.1",
    integrity=(
        "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37"
        "OgudVGtQ=="
    ),
    script="axe.min.js",
    banner=r"axe v(\d+\.\d+\.\d+)",
    directory=share_directory("axe"),
)

if __name__ == "__main__":
    BUNDLE.install_or_exit()
