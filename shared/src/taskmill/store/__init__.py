"""The task store on MongoDB: `TaskStore` and the shape of a stored task."""

from taskmill.store.connection import Task, connect
from taskmill.store.documents import new_task
from taskmill.store.leases import Recovered
from taskmill.store.overview import RunTimes
from taskmill.store.tasks import TaskStore

__all__ = ["Recovered", "RunTimes", "Task", "TaskStore", "connect", "new_task"]
