"""Each service's image, built by `make images`, run the way Kubernetes runs its pod
(tests/deploy/podman.py: its own command, user 10001, read-only root, tmpfs /tmp, no
capabilities, the config mounted at /etc/taskmill) against the real Kafka, task store and
MariaDB: each passes its own HEALTHCHECK and the Kubernetes probes, a task of each service
goes through the containerised api, dispatcher and workers, and each stops on SIGTERM
within the pods' grace period with exit code 0. Also: what each Dockerfile declares agrees
with its Deployment.
"""

from __future__ import annotations

import os
import secrets
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest
import yaml

from taskmill.client import ApiClient
from tests.deploy.dockerfile import Image, parse
from tests.deploy.podman import HOST, Podman, image
from tests.helpers import ROOT, unavailable, write_config
from tests.servers import free_port
from tests.system import wait_until

pytestmark = pytest.mark.integration

SERVICES = ["api", "dispatcher", "worker-aaa", "worker-bbb"]
# Kafka's listener for containers (infra/kafka/server.properties.in), as they reach it.
KAFKA_FOR_CONTAINERS = os.environ.get("KAFKA_CONTAINER_SERVERS", f"{HOST}:9094")


def k8s_container(service: str) -> dict[str, Any]:
    """The container of the service's Deployment in the kustomize base."""
    base = ROOT / "deploy" / "k8s" / "base"
    for path in base.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment" and doc["metadata"]["name"] == f"taskmill-{service}":
                return dict(doc["spec"]["template"]["spec"]["containers"][0])
    raise AssertionError(f"no Deployment taskmill-{service} in {base}")


def bound_port(image: Image) -> int:
    """The port the image's command listens on: --metrics-port, or the api's API_BIND."""
    if "--metrics-port" in image.cmd:
        return int(image.cmd[image.cmd.index("--metrics-port") + 1])
    return int(image.env["API_BIND"].rsplit(":", 1)[1])


@pytest.mark.parametrize("service", SERVICES)
def test_image_declares_one_port_and_health_path(service: str) -> None:
    """EXPOSE, the command's port, the HEALTHCHECK URL and the Kubernetes container agree."""
    image = parse(ROOT / "services" / service / "Dockerfile")
    container = k8s_container(service)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert image.expose == [bound_port(image)] == [image.health_port] == list(ports.values())
    assert container["livenessProbe"]["httpGet"]["path"] == image.health_path
    assert container["livenessProbe"]["httpGet"]["port"] in ports
    assert image.user and image.user.split(":")[0] != "0", "the image must not run as root"
    assert image.env.get("PYTHONUNBUFFERED") == "1"
    assert image.install[:2] == ["uv", "sync"] and "--locked" in image.install
    assert image.install[image.install.index("--package") + 1] == f"taskmill-{service}"




def grace_s() -> int:
    """The pods' terminationGracePeriodSeconds (deploy/k8s/base/pod-defaults.yaml)."""
    doc = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "pod-defaults.yaml").read_text())
    return int(doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


@dataclass
class Pods:
    """The four images running, a name and a published port each."""

    podman: Podman
    names: dict[str, str]
    ports: dict[str, int]
    api: ApiClient

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"


@pytest.fixture(scope="module")
def podman() -> Podman:
    found = Podman.find()
    if found is None:
        unavailable("podman", "not installed", "make images installs it (with debootstrap)")
    missing = [image(s) for s in SERVICES if not found.has(image(s))]
    if missing:
        unavailable("the service images", f"{', '.join(missing)} not built", "build them with make images")
    return found


@pytest.fixture(scope="module")
def pods(podman: Podman, tmp_path_factory: pytest.TempPathFactory, kafka_servers: str, mongo_uri: str,
         mysql_settings: dict[str, Any]) -> Iterator[Pods]:
    """api, dispatcher and both workers as containers, with topics, groups and a database of
    their own, tokens as the Kubernetes Secret gives them (each worker only its own)."""
    unique = uuid.uuid4().hex[:10]
    config_dir = tmp_path_factory.mktemp("pod-config")
    config_dir.chmod(0o755)
    services = {name: {"source_name": source, "topic_name": f"mq_{name}_{unique}",
                       "consumer_id": f"c_{name}_{unique}"}
                for name, source in (("aaa", "mongo"), ("bbb", "mysql"))}
    write_config(config_dir / "config.yaml", services).chmod(0o644)
    tokens = {var: secrets.token_hex(16) for var in ("AUTH_TOKEN", "WORKER_TOKEN_AAA", "WORKER_TOKEN_BBB")}
    mongo = urlsplit(mongo_uri)
    common = {"MONGO_URI": f"mongodb://{HOST}:{mongo.port}/", "MONGO_DBNAME": f"t_{unique}",
              "KAFKA_BOOTSTRAP_SERVERS": KAFKA_FOR_CONTAINERS}
    ports = {service: free_port() for service in SERVICES}
    workers = {**common, "TASKMILL_API_URL": f"http://{HOST}:{ports['api']}",
               "SOURCE_MONGO_URI": f"mongodb://{HOST}:{mongo.port}/", "SOURCE_MYSQL_HOST": HOST,
               "SOURCE_MYSQL_PORT": str(mysql_settings["port"]), "SOURCE_MYSQL_USER": mysql_settings["user"],
               "SOURCE_MYSQL_PASSWORD": mysql_settings["password"]}
    env = {"api": {**common, **tokens}, "dispatcher": common,
           "worker-aaa": {**workers, "WORKER_TOKEN": tokens["WORKER_TOKEN_AAA"]},
           "worker-bbb": {**workers, "WORKER_TOKEN": tokens["WORKER_TOKEN_BBB"]}}
    names = {service: f"taskmill-{service}-{unique}" for service in SERVICES}
    pods = Pods(podman, names, ports, ApiClient(f"http://127.0.0.1:{ports['api']}", tokens["AUTH_TOKEN"]))
    try:
        for service in SERVICES:
            podman.run_like_a_pod(names[service], service, ports[service], env[service], config_dir)
        yield pods
    finally:
        pods.api.close()
        for name in names.values():
            podman.remove(name)
        with pymongo.MongoClient(mongo_uri) as client:
            client.drop_database(f"t_{unique}")


def logs(pods: Pods) -> str:
    return "\n".join(f"--- {service}\n{pods.podman.logs(name)}" for service, name in pods.names.items())


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_passes_its_healthcheck_and_the_kubernetes_probes(pods: Pods, service: str) -> None:
    name = pods.names[service]
    wait_until(f"{service}'s own HEALTHCHECK passes", lambda: pods.podman.healthy(name), 90,
               lambda: pods.podman.logs(name))
    container = k8s_container(service)
    for probe in ("livenessProbe", "readinessProbe"):
        url = pods.url(service, container[probe]["httpGet"]["path"])
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200, f"{probe} {url}"
    with urllib.request.urlopen(pods.url(service, "/metrics"), timeout=5) as resp:
        assert b"taskmill_" in resp.read()


def test_tasks_of_both_services_run_through_the_containers(pods: Pods) -> None:
    """Created and started on the containerised api, published by the containerised
    dispatcher, run and reported by the containerised workers (through the api)."""
    for service in SERVICES:
        wait_until(f"{service} is healthy", lambda s=service: pods.podman.healthy(pods.names[s]), 90,
                   lambda: logs(pods))
    started = {service: pods.api.create_task(service, condition, start=True)
               for service, condition in (("aaa", {"city": "Berlin"}), ("bbb", {"group_by": "country"}))}

    def ended() -> bool:
        return all(s["status"] in ("finished", "failed") for s in pods.api.status_task(started.values()))
    wait_until("both tasks end", ended, 90, lambda: logs(pods))
    results = {service: pods.api.result_task(task_id) for service, task_id in started.items()}
    assert {s: r["status"] for s, r in results.items()} == {"aaa": "finished", "bbb": "finished"}, logs(pods)
    assert results["aaa"]["data"]["users"] and results["bbb"]["data"]["rows"]


def test_the_root_is_read_only_and_the_user_is_not_root(pods: Pods) -> None:
    name = pods.names["api"]
    assert pods.podman("exec", name, "id", "-u").stdout.strip() == "10001"
    refused = pods.podman("exec", name, "touch", "/app/written", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert pods.podman("exec", name, "touch", "/tmp/written", check=False).returncode == 0


@pytest.mark.parametrize("service", SERVICES)
def test_each_container_stops_on_sigterm_within_the_grace_period_with_exit_0(pods: Pods,
                                                                            service: str) -> None:
    name = pods.names[service]
    code, took = pods.podman.stop(name, grace_s())
    log = pods.podman.logs(name)
    assert (code, took < grace_s()) == (0, True), f"exit {code} after {took:.1f} s\n{log}"
    for trouble in ("Traceback", "Control server error", "Read-only file system", "ERROR"):
        assert trouble not in log, log
