"""Every service's /metrics counts exactly what happened; the dashboard and the alerts only
name metrics that the services really expose."""

from __future__ import annotations

import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from taskmill.client import ApiClient
from taskmill.errors import ApiError
from tests.helpers import ROOT
from tests.servers import free_port
from tests.system import System, scrape
from tests.system import metric_value as value

pytestmark = pytest.mark.e2e

SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""], "summary": ["_sum", "_count"]}
METRIC = re.compile(r"\btaskmill_[a-z0-9_]+")


def exposed(text: str) -> set[str]:
    """Every series name the exposition can contain, sampled yet or not."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, [""]))
        names.update(s.name for s in family.samples)
    return names


def full_system(start_system) -> tuple[System, dict[str, str]]:
    system = start_system(workers=(), lifecycle={"stats_interval_s": 0.5})
    ports = {name: free_port() for name in ("dispatcher", "aaa", "bbb")}
    system.stop("dispatcher")
    system.start_dispatcher(metrics_port=ports["dispatcher"])
    for service in ("aaa", "bbb"):
        system.start_worker(service, metrics_port=ports[service])
    urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
    urls["api"] = f"http://127.0.0.1:{system.api_port}/metrics"
    return system, urls


def test_the_counters_move_by_exactly_the_tasks_run(start_system):
    """3 aaa tasks finish, 1 bbb finishes and 1 fails: every service's metrics say so."""
    system, urls = full_system(start_system)
    aaa = [system.api.create_task("aaa", {"limit": 1}, start=True) for _ in range(3)]
    bbb = [system.api.create_task("bbb", {}, start=True),
           system.api.create_task("bbb", {"group_by": "day"}, start=True)]
    system.wait_final(aaa + bbb)

    api = scrape(urls["api"])
    assert value(api, "taskmill_api_tasks_created_total", service="aaa") == 3
    assert value(api, "taskmill_api_tasks_started_total", service="bbb") == 2
    assert value(api, "taskmill_api_status_reports_total", service="aaa", status="finished") == 3
    assert value(api, "taskmill_api_status_reports_total", service="bbb", status="failed") == 1
    assert value(api, "taskmill_api_requests_total", route="/api/create_task", status="200") == 5

    dispatcher = scrape(urls["dispatcher"])
    assert value(dispatcher, "taskmill_dispatcher_published_total", service="aaa") == 3
    assert value(dispatcher, "taskmill_dispatcher_published_total", service="bbb") == 2
    assert value(dispatcher, "taskmill_dispatcher_start_to_publish_seconds_count") == 5

    worker_aaa, worker_bbb = scrape(urls["aaa"]), scrape(urls["bbb"])
    assert value(worker_aaa, "taskmill_worker_tasks_total", service="aaa", outcome="finished") == 3
    assert value(worker_aaa, "taskmill_worker_run_duration_seconds_count", service="aaa") == 3
    assert value(worker_bbb, "taskmill_worker_tasks_total", service="bbb", outcome="finished") == 1
    assert value(worker_bbb, "taskmill_worker_tasks_total", service="bbb", outcome="failed") == 1
    assert value(worker_bbb, "taskmill_worker_tasks_in_flight", service="bbb") == 0

    def counted() -> bool:
        text = scrape(urls["dispatcher"])
        return (value(text, "taskmill_tasks", service="aaa", status="finished") == 3
                and value(text, "taskmill_tasks", service="bbb", status="failed") == 1
                and value(text, "taskmill_dispatcher_backlog_tasks") == 0)
    system.wait_until("the task gauges count the store", counted, timeout_s=30)


def test_api_counts_add_up_across_gunicorn_workers(start_system, tmp_path: Path):
    """Under several gunicorn workers, /metrics adds up every worker's requests."""
    system = start_system(workers=())
    url = f"http://127.0.0.1:{system.api_port}/api/service_task"
    headers = {"Authorization": "e2e-token"}
    sent = 0

    def one(_: int) -> None:
        request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:  # a new connection each
            assert answer.status == 200

    def pids_counting() -> set[str]:
        return {p.stem.split("_")[-1] for p in (tmp_path / "prometheus").glob("counter_*.db")}

    with ThreadPoolExecutor(8) as pool:
        while len(pids_counting()) < 2 or sent < 40:
            list(pool.map(one, range(20)))
            sent += 20
            assert sent <= 2000, "requests never reached a second gunicorn worker"
    total = value(scrape(f"http://127.0.0.1:{system.api_port}/metrics"), "taskmill_api_requests_total",
                  route="/api/service_task", status="200")
    assert total == sent


def test_dashboard_and_alerts_name_only_exposed_metrics(start_system):
    """Every metric a dashboard panel or an alert queries is one the services expose."""
    system, urls = full_system(start_system)
    task_id = system.api.create_task("aaa", {"limit": 1}, start=True)
    system.wait_final([task_id])
    # The api's multiprocess exposition shows a series only once it was touched.
    with pytest.raises(ApiError, match="409"):
        system.api.start_task(task_id)  # finished: not startable
    stranger = ApiClient(f"http://127.0.0.1:{system.api_port}", "wrong-token")
    with pytest.raises(ApiError, match="401"):
        stranger.services()
    stranger.close()
    names = set().union(*(exposed(scrape(url)) for url in urls.values()))

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "taskmill-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml").read_text())
    queries += [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert queries
    for query in queries:
        used = set(METRIC.findall(query))
        assert used, f"no taskmill metric in {query!r}"
        assert used <= names, f"{query!r} names metrics no service exposes: {used - names}"
