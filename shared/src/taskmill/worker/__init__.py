"""The worker SDK: write one function, `run(condition, ctx) -> dict`, and call `serve`.

    from taskmill.worker import TaskContext, TaskFailed, serve

    def run(condition: dict, ctx: TaskContext) -> dict:
        if "limit" in condition and not isinstance(condition["limit"], int):
            raise TaskFailed("limit must be an integer")   # ends the task failed
        ctx.progress(0.5, "halfway")
        return {"answer": 42}                               # ends the task finished

    def main() -> None:
        serve("aaa", run)
"""

from taskmill.worker.context import TaskContext, TaskFailed
from taskmill.worker.runner import Worker, serve

__all__ = ["TaskContext", "TaskFailed", "Worker", "serve"]
