"""The worker SDK: write one function, `run(condition, ctx) -> dict`, and call `serve`.

    from taskmill.worker import TaskContext, TaskFailed, serve

    def run(condition: dict, ctx: TaskContext) -> dict:
        if "limit" in condition and not isinstance(condition["limit"], int):
            raise TaskFailed("limit must be an integer")   # ends the task failed
        for step in range(100):
            if ctx.cancelled:                               # cancelled by a client: stop
                return {}
            ctx.progress(step / 100, "working")             # raises TaskCancelled as well
        return {"answer": 42}                               # ends the task finished

    def main() -> None:
        serve("aaa", run)
"""

from taskmill.worker.context import TaskCancelled, TaskContext, TaskFailed
from taskmill.worker.runner import Worker, serve

__all__ = ["TaskCancelled", "TaskContext", "TaskFailed", "Worker", "serve"]
