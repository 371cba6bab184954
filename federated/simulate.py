"""Simulated devices for the demo, ``simulate_trial``, the tests and the benchmarks: each answers
a window's query with a usage vector drawn for its participant, and the dose release's queries
with its usage over the dose period, through Flower's own ClientApp machinery. The values are
synthetic; a real device computes them from its event log (federated/client/)."""

from dataclasses import dataclass

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated.client.eventlog import dose_products
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


def simulated_devices(
    vectors: dict[str, dict[str, int]], *, dose_usage: dict[str, int] | None = None
) -> InProcessGrid:
    """An in-process grid of devices, one per participant token, each replying with its vector
    for the metrics the query names, and, given ``dose_usage`` (token → usage total over the
    dose period), answering the dose release as the SDK's ClientApp does."""
    app = ClientApp()

    @app.query("identify")
    def identify(message: Message, context: Context) -> Message:
        token = str(context.node_config["participant-token"])
        return Message(
            RecordDict({"identity": ConfigRecord({"participant-token": token})}),
            reply_to=message,
        )

    @app.query("dose")
    def dose(message: Message, context: Context) -> Message:
        token = str(context.node_config["participant-token"])
        query = message.content["dose"]
        vector = dose_products(
            (dose_usage or {})[token],
            upper=int(query["usage-upper"]),
            centre=int(query["usage-centre"]),
            change=int(query["change"]),
        )
        return Message(
            RecordDict(
                {
                    "dose": MetricRecord(vector),
                    "identity": ConfigRecord({"participant-token": token}),
                }
            ),
            reply_to=message,
        )

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

    tokens = dict.fromkeys([*vectors, *(dose_usage or {})])
    return InProcessGrid(app, [{"participant-token": token} for token in tokens])


@dataclass(frozen=True)
class DoseCohort:
    """Usage over the dose period and the outcome change of each simulated participant."""

    usage: np.ndarray
    change: np.ndarray


def simulated_dose(
    n: int,
    *,
    slope: float,
    usage_mean: float,
    usage_sd: float,
    change_sd: float,
    seed: int,
    change_mean: float = 0.0,
) -> DoseCohort:
    """``n`` participants whose outcome change rises by ``slope`` score points per unit of
    usage: usage is gamma-distributed with the given mean and SD (whole units), the change is
    ``change_mean + slope × (usage − usage_mean)`` plus normal noise of SD ``change_sd``."""
    if min(usage_mean, usage_sd, change_sd) <= 0:
        raise ValueError("The usage mean and the SDs must be positive.")
    rng = np.random.default_rng(seed)
    shape = (usage_mean / usage_sd) ** 2
    usage = np.round(rng.gamma(shape, usage_mean / shape, size=n)).astype(int)
    change = change_mean + slope * (usage - usage_mean) + rng.normal(0.0, change_sd, size=n)
    return DoseCohort(usage=usage, change=change)
