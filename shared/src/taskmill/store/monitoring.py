"""The store's commands as seen by the driver: `taskmill_store_commands_total{command}`.

Every process that opens the store counts the commands it sends (find, insert, update,
findAndModify, aggregate, …), so the cost of a task in round trips to MongoDB can be read
off the metrics of the api, the dispatcher and the workers (bench.e2e prints it per task).
"""

from __future__ import annotations

from prometheus_client import Counter
from pymongo import monitoring

COMMANDS = Counter("taskmill_store_commands_total", "Commands sent to the task store, by name.",
                   ["command"])


class CommandCounter(monitoring.CommandListener):
    """Counts each command the driver starts."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        COMMANDS.labels(event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
