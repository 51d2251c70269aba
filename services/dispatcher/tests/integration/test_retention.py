"""The dispatcher's retention chore over the real store, its clock moved by the test."""

import pytest
from prometheus_client import REGISTRY

from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill_dispatcher.retention import Retention
from tests.helpers import Clock, running_task

pytestmark = pytest.mark.integration

DAY_S = 86400


def finished_task(store: TaskStore, service) -> str:
    task_id = running_task(store, service)
    store.report(task_id, Status.FINISHED, result={}, attempt=1)
    return task_id


def deleted_total() -> float:
    labels = {"service": "aaa", "status": "finished"}
    return REGISTRY.get_sample_value("taskmill_dispatcher_deleted_total", labels) or 0.0


def test_each_service_keeps_its_tasks_its_own_number_of_days(make_config):
    config = make_config(retention={"finished_days": 30, "batch_size": 2,
                                    "per_service": {"aaa": {"finished_days": 2}}})
    clock = Clock()
    store = TaskStore(connect(config.mongo), config.lifecycle, clock=clock)
    store.ensure_indexes()
    try:
        aaa = [finished_task(store, config.service("aaa")) for _ in range(3)]
        bbb = finished_task(store, config.service("bbb"))
        clock.advance(3 * DAY_S)
        before = deleted_total()
        retention = Retention(config, store)
        assert retention.run_due() == 2  # a full batch: due again at once
        assert retention.run_due() == 1
        assert retention.run_due() == 0  # not due before interval_s
        assert store.get_many([*aaa, bbb]).keys() == {bbb}
        assert deleted_total() - before == 3
        assert store.counts.total("aaa") == 0 and store.counts.total("bbb") == 1
    finally:
        store.close()
