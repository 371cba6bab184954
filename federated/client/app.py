"""The Flower ClientApp an assistant app embeds (its SuperNode loads ``federated.client.app:app``).

Node configuration (``flower-supernode --node-config``):

* ``participant-token``: the participant's signed assignment token, as the assignment API uses;
* ``event-log``: the path of the device's :class:`~federated.client.eventlog.EventLog` file;
* ``timezone`` (optional): the device's IANA time zone, for days and late-night use.

The server's query names the window (``window-start``, ``window-end``, ISO dates) and the metrics
with their bounds (``metrics``, ``lower``, ``upper``). Without telemetry consent the reply is
empty: it carries neither the token nor any value.
"""

from datetime import date

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated.client.eventlog import EventLog

app = ClientApp()


@app.query()
def telemetry(message: Message, context: Context) -> Message:
    config = context.node_config
    log = EventLog(str(config["event-log"]), timezone=str(config.get("timezone", "UTC")))
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
        RecordDict(
            {
                "telemetry": MetricRecord(vector),
                "identity": ConfigRecord({"participant-token": str(config["participant-token"])}),
            }
        ),
        reply_to=message,
    )
