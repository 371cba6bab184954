"""Simulated devices for the demo, ``simulate_trial`` and the benchmarks: each answers a window's
query with a usage vector drawn for its participant, through Flower's own ClientApp machinery.
The values are synthetic; a real device computes them from its event log (federated/client/)."""

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated.grid import InProcessGrid

# Weekly use of the control arm: about 5 hours over 12 sessions, a late night a week.
BASE_MINUTES = 300.0
BASE_SESSIONS = 12.0
BASE_LATE_NIGHTS = 1.0


def simulated_usage(
    arms: list[str], *, treated: str, minutes_effect: float, window_days: int, seed: int
) -> list[dict[str, int]]:
    """One window's usage per participant: gamma-distributed minutes whose mean is
    ``BASE_MINUTES`` (per week) in control and ``minutes_effect`` more in ``treated``; sessions
    and late nights Poisson. Every metric the SDK knows is filled in."""
    rng = np.random.default_rng(seed)
    weeks = window_days / 7
    vectors = []
    for arm in arms:
        mean = max(1.0, (BASE_MINUTES + (minutes_effect if arm == treated else 0.0)) * weeks)
        sessions = int(rng.poisson(BASE_SESSIONS * weeks))
        decisions = int(rng.poisson(4 * weeks))
        vectors.append(
            {
                "minutes": int(rng.gamma(2.0, mean / 2.0)),
                "sessions": sessions,
                "conversations": int(rng.poisson(sessions * 1.5)),
                "decisions": decisions,
                "own_decisions": int(rng.binomial(decisions, 0.6)),
                "late_night_days": int(min(window_days, rng.poisson(BASE_LATE_NIGHTS * weeks))),
            }
        )
    return vectors


def simulated_devices(vectors: dict[str, dict[str, int]]) -> InProcessGrid:
    """An in-process grid of devices, one per participant token, each replying with its vector
    for the metrics the query names."""
    app = ClientApp()

    @app.query()
    def reply(message: Message, context: Context) -> Message:
        token = str(context.node_config["participant-token"])
        asked = message.content["query"]["metrics"]
        return Message(
            RecordDict(
                {
                    "telemetry": MetricRecord({code: vectors[token][code] for code in asked}),
                    "identity": ConfigRecord({"participant-token": token}),
                }
            ),
            reply_to=message,
        )

    return InProcessGrid(app, [{"participant-token": token} for token in vectors])
