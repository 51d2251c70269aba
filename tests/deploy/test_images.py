"""Each image runs what the services really run: its command, port and health path.

The Dockerfiles cannot be built here (no Docker engine), so each test installs the service
exactly as its Dockerfile does (the same `uv sync` into an environment of its own), runs the
image's CMD with that environment first on PATH against the real Kafka and FerretDB, and
probes it with the image's own HEALTHCHECK command and the Kubernetes probes' paths.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import Image, parse
from tests.helpers import ROOT
from tests.servers import Servers, free_port
from tests.system import environment, wait_until

pytestmark = pytest.mark.integration

SERVICES = ["api", "dispatcher", "worker-aaa", "worker-bbb"]
STOP_S = 40


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


def on_port(argv: list[str], port: int) -> list[str]:
    """The command listening on 127.0.0.1:port instead of the image's 0.0.0.0 and port."""
    args = list(argv)
    for flag, value in (("--metrics-port", str(port)), ("--metrics-addr", "127.0.0.1")):
        if flag in args:
            args[args.index(flag) + 1] = value
    return args


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


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each service installed alone, by its Dockerfile's own `uv sync` command."""
    envs = {}
    for service in SERVICES:
        image = parse(ROOT / "services" / service / "Dockerfile")
        venv = tmp_path_factory.mktemp(f"image-{service}") / "venv"
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
        subprocess.run(image.install + ["--quiet"], cwd=ROOT, env=env, check=True, timeout=300)
        envs[service] = venv
    return envs


@pytest.mark.parametrize("service", SERVICES)
def test_image_command_serves_its_health_checks(service: str, installs: dict[str, Path],
                                                tmp_path: Path, kafka_servers: str, mongo_uri: str,
                                                mysql_settings: dict[str, Any], task_db: str,
                                                unique: str) -> None:
    """The image's CMD, installed as the image installs it, answers the image's HEALTHCHECK
    and every Kubernetes probe path with 200, then stops cleanly on SIGTERM."""
    image = parse(ROOT / "services" / service / "Dockerfile")
    venv_bin = installs[service] / "bin"
    env, _, port = environment(tmp_path, Servers(kafka_servers, mongo_uri, mongo_uri, mysql_settings),
                               task_db, unique)
    # The image's environment, with its /tmp (an emptyDir on Kubernetes) in this test's folder.
    env.update({k: v.replace("/tmp/", f"{tmp_path}/") for k, v in image.env.items()
                if k not in ("PATH", "TASKMILL_CONFIG", "API_BIND")})
    env["PATH"] = f"{venv_bin}:{os.environ['PATH']}"
    if service != "api":
        port = free_port()
    log = (tmp_path / f"{service}.log").open("w")
    process = subprocess.Popen(on_port(image.cmd, port), env=env, cwd=tmp_path, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = [arg.replace(f":{image.health_port}/", f":{port}/") for arg in image.healthcheck]
        wait_until(f"{service}'s HEALTHCHECK passes",
                   lambda: subprocess.run(health, env=env, check=False).returncode == 0, 60,
                   lambda: (tmp_path / f"{service}.log").read_text())
        container = k8s_container(service)
        for probe in ("livenessProbe", "readinessProbe"):
            url = f"http://127.0.0.1:{port}{container[probe]['httpGet']['path']}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200, f"{probe} {url}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert b"taskmill_" in resp.read()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(STOP_S)
        log.close()
    assert code == 0, (tmp_path / f"{service}.log").read_text()
