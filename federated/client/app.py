"""The Flower ClientApp an assistant app embeds (its SuperNode loads ``federated.client.app:app``).

Node configuration (``flower-supernode --node-config``):

* ``participant-token``: the participant's signed assignment token, as the assignment API uses;
* ``event-log``: the path of the device's :class:`~federated.client.eventlog.EventLog` file;
* ``timezone`` (optional): the device's IANA time zone, for days and late-night use.

The server's query names the window (``window-start``, ``window-end``, ISO dates) and the metrics
with their bounds (``metrics``, ``lower``, ``upper``). Without telemetry consent the reply is
empty: it carries neither the token nor any value.

For the dose release (``federated.dose``) the server first asks who the device is
(``query.identify``), then sends this device alone its participant's outcome change
(``query.dose``); the device returns its clipped, centred usage over the period named, the change
and their products. Without telemetry consent it answers neither.
"""

from datetime import date

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated.client.eventlog import EventLog

app = ClientApp()


@app.query()
def telemetry(message: Message, context: Context) -> Message:
    log = _event_log(context)
    if not log.telemetry_consented:
        return Message(RecordDict(), reply_to=message)
    query = message.content["query"]
    bounds = {
        code: (int(lo), int(hi))
        for code, lo, hi in zip(query["metrics"], query["lower"], query["upper"], strict=True)
    }
    vector = log.window_vector(
        date.fromisoformat(str(query["window-start"])),
        date.fromisoformat(str(query["window-end"])),
        bounds,
    )
    return Message(
        RecordDict({"telemetry": MetricRecord(vector), "identity": _identity(context)}),
        reply_to=message,
    )


@app.query("identify")
def identify(message: Message, context: Context) -> Message:
    """The participant's token, so the server can send this device its own outcome change."""
    if not _event_log(context).telemetry_consented:
        return Message(RecordDict(), reply_to=message)
    return Message(RecordDict({"identity": _identity(context)}), reply_to=message)


@app.query("dose")
def dose(message: Message, context: Context) -> Message:
    log = _event_log(context)
    if not log.telemetry_consented:
        return Message(RecordDict(), reply_to=message)
    query = message.content["dose"]
    vector = log.dose_vector(
        date.fromisoformat(str(query["usage-start"])),
        date.fromisoformat(str(query["usage-end"])),
        metric=str(query["usage-metric"]),
        upper=int(query["usage-upper"]),
        centre=int(query["usage-centre"]),
        change=int(query["change"]),
    )
    return Message(
        RecordDict({"dose": MetricRecord(vector), "identity": _identity(context)}),
        reply_to=message,
    )


def _event_log(context: Context) -> EventLog:
    config = context.node_config
    return EventLog(str(config["event-log"]), timezone=str(config.get("timezone", "UTC")))


def _identity(context: Context) -> ConfigRecord:
    return ConfigRecord({"participant-token": str(context.node_config["participant-token"])})
