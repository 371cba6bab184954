"""An in-process Flower grid: the ServerApp's messages go straight to ClientApps in this process.

It stands in for the SuperLink and SuperNodes in fast tests and benchmarks; the messages, the
ServerApp and the ClientApp are Flower's own. One slow test runs the real deployment engine.
"""

from collections.abc import Iterable

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity


class InProcessGrid(Grid):
    """Nodes numbered 1…n, each with its own node config, all served by ``client_app``."""

    def __init__(self, client_app: ClientApp, node_configs: list[dict]) -> None:
        self.client_app = client_app
        self.node_configs = {number: config for number, config in enumerate(node_configs, 1)}
        # Flower fills message metadata from the running task's identity, which the SuperExec
        # sets in a real deployment.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0

    @property
    def run(self) -> None:
        return None

    def set_run(self, run_id: int) -> None:
        pass

    def create_message(self, *args, **kwargs) -> Message:
        raise NotImplementedError("Build flwr.app.Message directly.")

    def get_nodes(self) -> list:
        return []

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_configs)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("Use send_and_receive.")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("Use send_and_receive.")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            context = Context(
                run_id=1,
                node_id=node,
                node_config=self.node_configs[node],
                state=RecordDict(),
                run_config={},
            )
            replies.append(self.client_app(message, context))
        return replies
