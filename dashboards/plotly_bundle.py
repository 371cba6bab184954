"""Plotly.js's basic partial bundle for the dashboards, installed from the npm registry.

Why: Dash lazy-loads the full plotly.js that plotly.py ships (every trace type from maps to 3D),
and the browser evaluates all of it before the first figure can draw (``make bench
BENCH_ARGS=dashboard`` measures a dashboard's first load). The dashboards draw only ``scatter``
and ``bar`` traces, which Plotly's official basic bundle (``plotly.js-basic-dist-min``: scatter,
bar, pie; a fraction of the full bundle's size) carries. When ``window.Plotly`` is already
defined, Dash's graph component uses it instead of loading its own, so the bundle is served as
a Dash asset, a plain script ahead of the renderer.

It is installed as config/npm_bundle.py installs a pinned npm script, at the same plotly.js
version as plotly.py's own bundle (a test checks that they move together); the Docker image
installs it beside the system's packages. Without it the dashboards still work: Dash falls back
to the full bundle.

    python -m dashboards.plotly_bundle          # install (idempotent)
"""

from config.npm_bundle import NpmBundle, share_directory

BUNDLE = NpmBundle(
    package="plotly.js-basic-dist-min",
    version="4.1.1",
    integrity=(
        "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/"
        "OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
    ),
    script="plotly-basic.min.js",
    banner=r"plotly\.js.* v(\d+\.\d+\.\d+)",
    directory=share_directory("plotly"),
)
# The trace types the basic bundle registers (plotly.js's partial-bundle list).
TRACE_TYPES = frozenset({"scatter", "bar", "pie"})

if __name__ == "__main__":
    BUNDLE.install_or_exit()
