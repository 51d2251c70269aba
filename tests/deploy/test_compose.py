"""docker-compose.yml wires the images the way they really run (checked without Docker)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pymongo
import pymysql
import pytest
import yaml

from tests.deploy.dockerfile import parse
from tests.helpers import ROOT, sample_data
from tests.servers import Servers
from tests.system import environment

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
TASKMILL = ["api", "dispatcher", "worker-aaa", "worker-bbb"]


def test_each_service_builds_its_own_dockerfile_and_is_scraped_on_its_port() -> None:
    """Every service is built from services/<name>/Dockerfile, and Prometheus scrapes it on
    the port that image exposes; the workers wait for a healthy api and the sample data."""
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}
    for name in TASKMILL:
        service = COMPOSE["services"][name]
        assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert f"{name}:{parse(ROOT / service['build']['dockerfile']).expose[0]}" in targets
        assert service["read_only"] is True
    for worker in ("worker-aaa", "worker-bbb"):
        depends = COMPOSE["services"][worker]["depends_on"]
        assert depends["api"]["condition"] == "service_healthy"
        assert depends["sample-data"]["condition"] == "service_completed_successfully"


def test_grafana_provisions_the_dashboard_the_tests_check() -> None:
    """Grafana mounts deploy/grafana/taskmill-dashboard.json where its provider looks."""
    grafana = COMPOSE["services"]["grafana"]
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/taskmill.yaml").read_text())["providers"][0]
    mounts = dict(volume.rsplit(":", 1)[0].split(":") for volume in grafana["volumes"])
    dashboard = mounts["./deploy/grafana/taskmill-dashboard.json"]
    assert Path(dashboard).parent == Path(provider["options"]["path"])
    assert (ROOT / "deploy/grafana/taskmill-dashboard.json").is_file()


@pytest.mark.integration
def test_sample_data_service_fills_both_sources(tmp_path: Path, kafka_servers: str, mongo_uri: str,
                                                mysql_settings: dict[str, Any],
                                                empty_mysql_database: str, task_db: str,
                                                unique: str) -> None:
    """The compose one-shot `sample-data`, run natively with the compose environment pointed
    at the local servers, fills the MongoDB users and the MySQL tables the workers read."""
    service = COMPOSE["services"]["sample-data"]
    command = [arg.replace("/opt/sample_data.py", str(ROOT / "scripts" / "sample_data.py"))
               for arg in service["entrypoint"]]
    dbname = f"sample_{unique}"
    env, _, _ = environment(tmp_path, Servers(kafka_servers, mongo_uri, mongo_uri, mysql_settings),
                            task_db, unique)
    env.update(SOURCE_MONGO_DBNAME=dbname, SOURCE_MYSQL_DATABASE=empty_mysql_database)
    subprocess.run(command, env=env, check=True, timeout=120)
    data = sample_data()
    with pymongo.MongoClient(mongo_uri) as client:
        try:
            assert client[dbname]["users"].count_documents({}) == len(data.users())
        finally:
            client.drop_database(dbname)
    mysql = {**mysql_settings, "database": empty_mysql_database}
    with pymysql.connect(**mysql) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM customers")
        assert cursor.fetchone()[0] == len(data.customers())
        cursor.execute("SELECT COUNT(*) FROM orders")
        assert cursor.fetchone()[0] == len(data.orders())


def test_each_process_gets_only_the_tokens_it_uses() -> None:
    """The api checks every token; each worker reports with its own service's token; the
    dispatcher and the sample data need none (least privilege)."""
    def tokens(name: str) -> dict[str, str]:
        return {k: v for k, v in COMPOSE["services"][name]["environment"].items() if "TOKEN" in k}
    assert set(tokens("api")) == {"AUTH_TOKEN", "CLIENT_TOKEN", "WORKER_TOKEN_AAA", "WORKER_TOKEN_BBB"}
    for service in ("aaa", "bbb"):
        [(key, value)] = tokens(f"worker-{service}").items()
        assert key == "WORKER_TOKEN" and value.startswith(f"${{WORKER_TOKEN_{service.upper()}:?")
    assert tokens("dispatcher") == {} and tokens("sample-data") == {}
