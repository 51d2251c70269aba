"""The errors Taskmill raises on purpose.

    TaskmillError
    ├── ConfigError            bad configuration file or environment
    ├── InvalidParameter       a request field has the wrong type, range or shape
    │   └── UnknownService     the service is not configured
    ├── TaskNotFound           no task has the given task_id
    ├── StateConflict          the task's state does not allow the change
    ├── DependencyUnavailable  MongoDB (or another dependency) cannot be reached
    ├── MessageDecodeError     a Kafka message is not the contract's message
    └── ApiError               the api answered with an error (client side)
        └── ApiUnavailable     the api could not be reached
"""


class TaskmillError(Exception):
    """Root of every error Taskmill raises on purpose."""


class ConfigError(TaskmillError):
    """Raised when the configuration file or an environment override is invalid."""


class InvalidParameter(TaskmillError):
    """Raised when a request field has the wrong type, range or shape."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid parameter: {detail}")
        self.detail = detail


class UnknownService(InvalidParameter):
    """Raised when a request names a service that is not configured."""

    def __init__(self, service: object) -> None:
        super().__init__(f"service {service!r} is not configured")
        # The original document's exact words.
        self.args = ("service not support",)


class TaskNotFound(TaskmillError):
    """Raised when no task has the given task_id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class StateConflict(TaskmillError):
    """Raised when the task's current state does not allow the requested change."""


class DependencyUnavailable(TaskmillError):
    """Raised when MongoDB (or another dependency) cannot be reached in time."""


class MessageDecodeError(TaskmillError):
    """Raised when a Kafka message value is not the contract's task message."""


class ApiError(TaskmillError):
    """Raised by the api client when the api answers with an error body."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(f"HTTP {http_status}: {message}")
        self.http_status = http_status
        self.message = message


class ApiUnavailable(ApiError):
    """Raised by the api client when the api cannot be reached."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)
