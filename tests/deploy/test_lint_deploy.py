"""`make lint-deploy` passes on the repository and fails, naming the fault, on a broken copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration  # builds kustomize with Go, fetches the CRD modules

LINT = ROOT / "scripts" / "lint-deploy.sh"
# What lint_deploy.py reads: a copy of these is a repository it can check.
ARTEFACTS = [".hadolint.yaml", "docker-compose.yml", "config", "deploy", "scripts/sample_data.py"]


def lint(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--root", str(root)], capture_output=True, text=True,
                          timeout=600, check=False)


def test_the_repository_passes() -> None:
    """Every Dockerfile, the compose file and all three overlays are valid."""
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stderr and "production, stage, test" in result.stderr


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the deployment artefacts to break."""
    for name in ARTEFACTS:
        source, target = ROOT / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    for dockerfile in ROOT.glob("services/*/Dockerfile"):
        target = tmp_path / dockerfile.relative_to(ROOT)
        target.parent.mkdir(parents=True)
        shutil.copy(dockerfile, target)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


CASES = {
    "a misspelt Kubernetes field": (
        "deploy/k8s/base/api/deployment.yaml", "periodSeconds: 5", "periodSecond: 5",
        "Deployment/taskmill-api: spec/template/spec/containers/0/readinessProbe: "
        "Additional properties are not allowed ('periodSecond' was unexpected)"),
    "a wrong type in a KEDA ScaledObject": (
        "deploy/k8s/base/workers/worker-aaa.yaml", "pollingInterval: 15", "pollingInterval: often",
        "ScaledObject/taskmill-worker-aaa: spec/pollingInterval: 'often' is not of type 'integer'"),
    "a ServiceMonitor field that does not exist": (
        "deploy/k8s/base/servicemonitors.yaml", "{port: http, path: /metrics, interval: 15s}",
        "{port: http, path: /metrics, every: 15s}",
        "ServiceMonitor/taskmill-api: spec/endpoints/0: Additional properties are not allowed"),
    "a worker scaled on another service's topic": (
        "deploy/k8s/base/workers/worker-bbb.yaml", "topic: mq_bbb", "topic: mq_aaa",
        "ScaledObject/taskmill-worker-bbb: topic mq_aaa is not bbb's mq_bbb"),
    "a worker scaled on another service's backlog": (
        "deploy/k8s/base/workers/worker-bbb.yaml", 'work_seconds{service="bbb"}',
        'work_seconds{service="aaa"}',
        "ScaledObject/taskmill-worker-bbb: prometheus trigger's query is about aaa, bbb, not bbb"),
    "a writable root filesystem": (
        "deploy/k8s/base/pod-defaults.yaml", "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false", "Deployment/taskmill-dispatcher: root filesystem is not read-only"),
    "a grace period shorter than the services' shutdown": (
        "deploy/k8s/base/pod-defaults.yaml", "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 10",
        "terminationGracePeriodSeconds 10 does not cover lifecycle.shutdown_grace_s 25"),
    "a secret key the template does not have": (
        "deploy/k8s/base/api/deployment.yaml", "key: CLIENT_TOKEN,", "key: USER_TOKEN,",
        "env CLIENT_TOKEN: secret taskmill/USER_TOKEN is not in deploy/k8s/secret.example.yaml"),
    "a worker reporting with another service's token": (
        "deploy/k8s/base/workers/worker-bbb.yaml", "key: WORKER_TOKEN_BBB}", "key: WORKER_TOKEN_AAA}",
        "Deployment/taskmill-worker-bbb: WORKER_TOKEN must come from the secret key WORKER_TOKEN_BBB"),
    "a misspelt setting in an overlay": (
        "deploy/k8s/overlays/stage/kustomization.yaml", "- KAFKA_BOOTSTRAP_SERVERS=",
        "- KAFKA_BOOTSTRAP_SERVER=",
        "overlays/stage Deployment/taskmill-api: env KAFKA_BOOTSTRAP_SERVER is not a Taskmill setting"),
    "a misspelt setting in compose": (
        "docker-compose.yml", "  MONGO_URI: mongodb", "  MONGO_URL: mongodb",
        "docker-compose.yml services/api: MONGO_URL is not a Taskmill setting"),
    "an invalid compose condition": (
        "docker-compose.yml", "mongo: {condition: service_healthy}\n\n  dispatcher",
        "mongo: {condition: healthy}\n\n  dispatcher",
        "docker-compose.yml services/api/depends_on"),
    "an unpinned apt install in a Dockerfile": (
        "services/worker-bbb/Dockerfile", "USER 10001:10001",
        "RUN apt-get update && apt-get install -y --no-install-recommends curl "
        "&& rm -rf /var/lib/apt/lists/*\nUSER 10001:10001",
        "services/worker-bbb/Dockerfile:24 DL3008 warning: Pin versions in apt get install"),
    "a service moved to a share group still scaled on consumer-group lag": (
        "config/config.yaml", "modes: {}", "modes: {aaa: share_group}",
        "ScaledObject/taskmill-worker-aaa: aaa reads its topic in a share group, which has no "
        "consumer-group lag for KEDA's kafka trigger"),
    "a config the pods could not load": (
        "config/config.yaml", "max_attempts: 3 ", "max_attempts: three ",
        "the config does not load"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_artefact_fails_and_is_named(case: str, broken: Path) -> None:
    """lint-deploy exits 1 and its report names the broken file, object and fault."""
    path, old, new, expected = CASES[case]
    edit(broken / path, old, new)
    result = lint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout


def test_a_share_group_service_scales_on_its_backlog_past_the_partitions(broken: Path) -> None:
    """aaa moved to a share group with its ScaledObject made to fit (the work-seconds
    trigger alone, 16 replicas on 4 partitions, no overlay bounds): the lint passes; with
    aaa back in a consumer group, the same replicas are over the partitions."""
    edit(broken / "config/config.yaml", "modes: {}", "modes: {aaa: share_group}")
    worker = broken / "deploy/k8s/base/workers/worker-aaa.yaml"
    text = worker.read_text()
    kafka = text[text.index("    - type: kafka"):text.index("    - type: prometheus")]
    worker.write_text(text.replace(kafka, "").replace("maxReplicaCount: 4", "maxReplicaCount: 16")
                      .replace('max(taskmill_dispatcher_queued_tasks{service="aaa"})',
                               'max(taskmill_dispatcher_backlog_work_seconds{service="aaa"})'))
    for overlay in broken.glob("deploy/k8s/overlays/*/kustomization.yaml"):  # their own bounds
        overlay.write_text("".join(line for line in overlay.read_text().splitlines(keepends=True)
                                   if "triggers/0" not in line and "maxReplicaCount" not in line))
    result = lint(broken)
    assert result.returncode == 0, result.stdout + result.stderr
    edit(broken / "config/config.yaml", "modes: {aaa: share_group}", "modes: {}")
    result = lint(broken)
    assert result.returncode == 1
    assert "ScaledObject/taskmill-worker-aaa: maxReplicaCount exceeds the topic's 4 partitions" \
        in result.stdout
