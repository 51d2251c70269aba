"""Validate every deployment artefact offline (`make lint-deploy`, via scripts/lint-deploy.sh).

    python scripts/lint_deploy.py --kustomize PATH [--root DIR]

1. Dockerfiles: hadolint, no warning allowed (.hadolint.yaml).
2. docker-compose.yml: the compose specification's JSON schema (vendored by check-jsonschema).
3. Every overlay of deploy/k8s/overlays: `kustomize build`, then each object against the
   Kubernetes schemas (kubernetes-validate, strict: an unknown field is an error) or, for
   KEDA and Prometheus Operator kinds, against the CRDs' own schemas (made strict the same
   way), from the Go modules pinned below.
4. Taskmill's own rules over what was built: hardened pods with probes and limits, a grace
   period covering lifecycle.shutdown_grace_s, references that resolve, one worker
   Deployment and ScaledObject per configured service on its topic and consumer group (a
   share-group service: on its work-seconds backlog, no kafka trigger, no partition cap).

Prints one line per problem and exits 1 if there is any. Nothing is fetched but the Go
modules of the CRDs (from the Go module proxy, checked against the sums below).
"""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from taskmill.config import ENV_OVERRIDES, Config, ServiceConfig, parse_config
from taskmill.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

KUBERNETES_VERSION = "1.33.0"

# CRD sources: module@version, its go.sum hash, and the CRD files used.
CRD_MODULES = {
    "github.com/kedacore/keda/v2@v2.21.0": (
        "h1:R6z2HZvstK4RLUMxroNACzBj74xGxt3kG59b5Xc+Xps=",
        ["config/crd/bases/keda.sh_scaledobjects.yaml",
         "config/crd/bases/keda.sh_triggerauthentications.yaml"]),
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": (
        "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=",
        ["example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
         "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"]),
}

SECRET_NAME = "taskmill"
# The environment a Taskmill process reads: the config's overrides, gunicorn's settings
# (services/api/src/taskmill_api/gunicorn_conf.py) and Python's own. Anything else is a typo.
# The variables the shipped config's named tokens are read from (`env:`) are settings too.
TOKEN_ENV = {entry["env"] for entry in yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
             .get("taskmill", {}).get("tokens", []) if isinstance(entry, dict) and "env" in entry}
KNOWN_ENV = {*ENV_OVERRIDES, *TOKEN_ENV, "API_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS",
             "PROMETHEUS_MULTIPROC_DIR", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
# What a kafka trigger must say (KEDA ignores a misspelt key and falls back to its default).
KAFKA_TRIGGER_KEYS = {"consumerGroup", "topic", "lagThreshold"}
KAFKA_TRIGGER_OPTIONAL = {"bootstrapServers", "bootstrapServersFromEnv", "activationLagThreshold",
                          "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
                          "excludePersistentLag", "limitToPartitionsWithLag", "version",
                          "partitionLimitation", "sasl", "tls"}
# What scales a share-group service's workers: the work queued for them (a share group has
# no consumer-group lag, and any number of its workers take tasks).
SHARE_GROUP_BACKLOG = "taskmill_dispatcher_backlog_work_seconds"

# What a prometheus trigger must say, and may.
PROMETHEUS_TRIGGER_KEYS = {"serverAddress", "query", "threshold"}
PROMETHEUS_TRIGGER_OPTIONAL = {"activationThreshold", "namespace", "customHeaders",
                               "ignoreNullValues", "queryParameters", "unsafeSsl", "authModes"}
GRACE_MARGIN_S = 3


class Problems(list[str]):
    """What is wrong, one line each, prefixed with where."""

    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


# -- Dockerfiles ----------------------------------------------------------------------------

def dockerfiles(root: Path) -> list[Path]:
    """Every service's Dockerfile."""
    return sorted(root.glob("services/*/Dockerfile"))


def lint_dockerfiles(root: Path, problems: Problems) -> None:
    """hadolint over every Dockerfile."""
    files = dockerfiles(root)
    if not files:
        problems.add("services", "no Dockerfile found")
        return
    hadolint = Path(sys.executable).with_name("hadolint")
    out = subprocess.run([str(hadolint), "--no-color", "--config", str(root / ".hadolint.yaml"),
                          *map(str, files)], capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    for line in lines or [f"exited {out.returncode}"]:
        problems.add("hadolint", line.replace(str(root) + "/", ""))


# -- docker-compose.yml ---------------------------------------------------------------------

def lint_compose(root: Path, problems: Problems) -> None:
    """The compose file against the compose specification, and its build files exist."""
    path = root / "docker-compose.yml"
    compose = yaml.safe_load(path.read_text())
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    for error in jsonschema.Draft7Validator(schema).iter_errors(compose):
        location = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.add(f"docker-compose.yml {location}", error.message)
    for name, service in (compose.get("services") or {}).items():
        build = service.get("build") if isinstance(service, dict) else None
        if isinstance(build, dict):
            environment = service.get("environment") or {}
            for key in sorted(set(environment) - KNOWN_ENV if isinstance(environment, dict) else ()):
                problems.add(f"docker-compose.yml services/{name}", f"{key} is not a Taskmill setting")
        if isinstance(build, dict) and not (root / build.get("context", ".") /
                                            build.get("dockerfile", "Dockerfile")).is_file():
            problems.add(f"docker-compose.yml services/{name}", "its build dockerfile does not exist")


# -- Kubernetes -----------------------------------------------------------------------------

def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema, from the pinned CRD modules."""
    schemas = {}
    for module, (expected_sum, files) in CRD_MODULES.items():
        download = subprocess.run(["go", "mod", "download", "-json", module], cwd=tempfile.gettempdir(),
                                  capture_output=True, text=True, check=True)
        info = json.loads(download.stdout)
        if info.get("Sum") != expected_sum:
            raise SystemExit(f"{module}: go.sum hash {info.get('Sum')} is not the pinned {expected_sum}")
        for name in files:
            crd = yaml.safe_load((Path(info["Dir"]) / name).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict(schema: Any) -> Any:
    """Refuse unknown fields wherever the schema lists the known ones (as kubectl's strict mode)."""
    if isinstance(schema, dict):
        for value in schema.values():
            strict(value)
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            strict(item)
    return schema


def build_overlay(kustomize: Path, overlay: Path) -> list[dict[str, Any]]:
    """`kustomize build` of one overlay, as objects."""
    out = subprocess.run([str(kustomize), "build", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise ValueError(out.stderr.strip())
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def validate_schema(doc: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]]) -> str | None:
    """The first schema violation of one object, or None."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in crds:
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(crds[key]).iter_errors(doc))
        return None if error is None else f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for {key[0]} {key[1]}"
    except kubernetes_validate.ValidationError as ex:
        return f"{'/'.join(map(str, ex.path))}: {ex.message}"
    return None


def lint_overlays(root: Path, kustomize: Path, problems: Problems) -> None:
    """Build, validate and check every overlay."""
    overlays = sorted(p for p in (root / "deploy/k8s/overlays").iterdir() if p.is_dir())
    if not overlays:
        problems.add("deploy/k8s/overlays", "no overlay found")
    crds = crd_schemas()
    secret_keys = set(yaml.safe_load((root / "deploy/k8s/secret.example.yaml").read_text())["stringData"])
    for overlay in overlays:
        where = f"overlays/{overlay.name}"
        try:
            docs = build_overlay(kustomize, overlay)
        except ValueError as ex:
            problems.add(where, f"kustomize build failed: {ex}")
            continue
        for doc in docs:
            error = validate_schema(doc, crds)
            if error:
                problems.add(f"{where} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}", error)
        Rules(where, docs, secret_keys, problems).check()


class Rules:
    """Taskmill's own rules over one built overlay."""

    def __init__(self, where: str, docs: list[dict[str, Any]], secret_keys: set[str],
                 problems: Problems) -> None:
        self.where = where
        self.docs = docs
        self.secret_keys = secret_keys
        self.problems = problems
        self.maps = self.named("ConfigMap")
        self.deployments = self.named("Deployment")
        self.services = self.named("Service")

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (d for d in self.docs if d.get("kind") == kind)

    def named(self, kind: str) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in self.of_kind(kind)}

    def add(self, doc: dict[str, Any], what: str) -> None:
        self.problems.add(f"{self.where} {doc['kind']}/{doc['metadata']['name']}", what)

    def check(self) -> None:
        config = self.config()
        if config is None:
            return
        for deployment in self.deployments.values():
            self.check_pod(deployment, config)
        self.check_workers(config)
        self.check_targets()

    def config(self) -> Config | None:
        """The Config the pods will load: the ConfigMap's file with the env ConfigMap applied."""
        files = [m for m in self.maps.values() if "config.yaml" in m.get("data", {})]
        envs = [m for m in self.maps.values() if "TASKMILL_ENV" in m.get("data", {})]
        if len(files) != 1 or len(envs) != 1:
            self.problems.add(self.where, "expected one ConfigMap with config.yaml and one with TASKMILL_ENV")
            return None
        try:
            raw = yaml.safe_load(files[0]["data"]["config.yaml"])
            if not isinstance(raw, dict):
                raise ConfigError("the file is not a YAML mapping")
            return parse_config(raw, envs[0]["data"])
        except (ConfigError, yaml.YAMLError) as ex:  # the pods would fail the same way
            self.problems.add(self.where, f"the config does not load: {ex}")
            return None

    def check_pod(self, deployment: dict[str, Any], config: Config) -> None:
        pod = deployment["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            self.add(deployment, "pod securityContext.runAsNonRoot is not true")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace < config.lifecycle.shutdown_grace_s + GRACE_MARGIN_S:
            self.add(deployment, f"terminationGracePeriodSeconds {grace} does not cover "
                                 f"lifecycle.shutdown_grace_s {config.lifecycle.shutdown_grace_s:g}")
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            self.check_container(deployment, container, volumes)

    def check_container(self, deployment: dict[str, Any], container: dict[str, Any],
                        volumes: set[str]) -> None:
        self.check_security(deployment, container.get("securityContext", {}))
        self.check_probes(deployment, container)
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            self.add(deployment, f"image {image} has no pinned tag")
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                self.add(deployment, f"resources.{part} must set cpu and memory")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                self.add(deployment, f"volume {mount['name']} is mounted but not defined")
        self.check_refs(deployment, container)

    def check_security(self, deployment: dict[str, Any], security: dict[str, Any]) -> None:
        if security.get("readOnlyRootFilesystem") is not True:
            self.add(deployment, "root filesystem is not read-only")
        if security.get("allowPrivilegeEscalation") is not False:
            self.add(deployment, "allowPrivilegeEscalation is not false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            self.add(deployment, "capabilities are not all dropped")

    def check_probes(self, deployment: dict[str, Any], container: dict[str, Any]) -> None:
        ports = {p.get("name") for p in container.get("ports", [])} | {
            p["containerPort"] for p in container.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            http = container.get(probe, {}).get("httpGet")
            if http is None:
                self.add(deployment, f"no HTTP {probe}")
            elif http.get("port") not in ports:
                self.add(deployment, f"{probe} port {http.get('port')} is not a container port")

    def check_refs(self, deployment: dict[str, Any], container: dict[str, Any]) -> None:
        maps = self.maps
        names = {var["name"] for var in container.get("env", [])}
        for source in container.get("envFrom", []):
            names |= set(maps.get(source.get("configMapRef", {}).get("name"), {}).get("data", {}))
        for name in sorted(names - KNOWN_ENV):
            self.add(deployment, f"env {name} is not a Taskmill setting")
        for source in container.get("envFrom", []):
            name = source.get("configMapRef", {}).get("name")
            if name is not None and name not in maps:
                self.add(deployment, f"envFrom ConfigMap {name} is not in the overlay")
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref and (ref["name"] != SECRET_NAME or ref["key"] not in self.secret_keys):
                self.add(deployment, f"env {var['name']}: secret {ref['name']}/{ref['key']} is not "
                                     "in deploy/k8s/secret.example.yaml")

    def check_workers(self, config: Config) -> None:
        deployments = self.deployments
        scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in self.of_kind("ScaledObject")}
        for name in config.services:
            worker = f"taskmill-worker-{name}"
            if worker not in deployments:
                self.problems.add(self.where, f"service {name} has no Deployment {worker}")
            self.check_worker_token(deployments.get(worker), name)
            if worker not in scaled:
                self.problems.add(self.where, f"service {name} has no ScaledObject for {worker}")
                continue
            self.check_scaling(scaled[worker], config, name)
        for target, obj in scaled.items():
            if target not in deployments:
                self.add(obj, f"scales {target}, which is not a Deployment of the overlay")

    def check_worker_token(self, deployment: dict[str, Any] | None, service: str) -> None:
        """A worker reports with a token of its own service (least privilege), never with
        the admin's AUTH_TOKEN."""
        if deployment is None:
            return
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = {var["name"]: var.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
                   for var in container.get("env", [])}
            if "AUTH_TOKEN" in env:
                self.add(deployment, "a worker must not hold AUTH_TOKEN (the admin token)")
            if env.get("WORKER_TOKEN") != f"WORKER_TOKEN_{service.upper()}":
                self.add(deployment, f"WORKER_TOKEN must come from the secret key "
                                     f"WORKER_TOKEN_{service.upper()}")

    def check_scaling(self, obj: dict[str, Any], config: Config, service: str) -> None:
        expected = config.service(service)
        triggers = obj["spec"].get("triggers", [])
        for trigger in triggers:
            meta = trigger.get("metadata", {})
            if trigger.get("type") == "prometheus":
                self.check_prometheus_trigger(obj, meta, service)
            elif trigger.get("type") == "kafka" and expected.shared:
                self.add(obj, f"{service} reads its topic in a share group, which has no "
                              "consumer-group lag for KEDA's kafka trigger: scale it on "
                              f"{SHARE_GROUP_BACKLOG} (a prometheus trigger)")
            elif trigger.get("type") == "kafka":
                self.check_kafka_trigger(obj, meta, expected)
        if expected.shared:
            queries = [str(t.get("metadata", {}).get("query", "")) for t in triggers
                       if t.get("type") == "prometheus"]
            if not any(SHARE_GROUP_BACKLOG in query for query in queries):
                self.add(obj, f"{service} reads its topic in a share group: a prometheus trigger "
                              f"on {SHARE_GROUP_BACKLOG} must scale it")
        elif obj["spec"].get("maxReplicaCount", 100) > config.kafka.partitions:
            self.add(obj, f"maxReplicaCount exceeds the topic's {config.kafka.partitions} partitions "
                          "(the extra consumers would sit idle)")

    def check_kafka_trigger(self, obj: dict[str, Any], meta: dict[str, Any],
                            expected: ServiceConfig) -> None:
        for key in sorted(KAFKA_TRIGGER_KEYS - set(meta)):
            self.add(obj, f"kafka trigger has no {key}")
        for key in sorted(set(meta) - KAFKA_TRIGGER_KEYS - KAFKA_TRIGGER_OPTIONAL):
            self.add(obj, f"kafka trigger has an unknown key {key} (KEDA would ignore it)")
        if meta.get("topic") != expected.topic_name:
            self.add(obj, f"topic {meta.get('topic')} is not {expected.name}'s {expected.topic_name}")
        if meta.get("consumerGroup") != expected.consumer_id:
            self.add(obj, f"consumerGroup {meta.get('consumerGroup')} is not {expected.name}'s "
                          f"{expected.consumer_id}")

    def check_prometheus_trigger(self, obj: dict[str, Any], meta: dict[str, Any], service: str) -> None:
        for key in sorted(PROMETHEUS_TRIGGER_KEYS - set(meta)):
            self.add(obj, f"prometheus trigger has no {key}")
        for key in sorted(set(meta) - PROMETHEUS_TRIGGER_KEYS - PROMETHEUS_TRIGGER_OPTIONAL):
            self.add(obj, f"prometheus trigger has an unknown key {key} (KEDA would ignore it)")
        services = set(re.findall(r'service="([^"]*)"', str(meta.get("query", ""))))
        if services != {service}:
            about = ", ".join(sorted(services)) or "no service"
            self.add(obj, f"prometheus trigger's query is about {about}, not {service}")

    def check_targets(self) -> None:
        deployments = self.deployments
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
                self.add(hpa, "scales a Deployment that is not in the overlay")
        for pdb in self.of_kind("PodDisruptionBudget"):
            if not self.selects(pdb["spec"]["selector"]["matchLabels"], deployments.values()):
                self.add(pdb, "selects no Deployment's pods")
        for service in self.services.values():
            if not self.selects(service["spec"]["selector"], deployments.values()):
                self.add(service, "selects no Deployment's pods")
        self.check_monitors()

    def check_monitors(self) -> None:
        services = self.services
        for monitor in self.of_kind("ServiceMonitor"):
            labels = monitor["spec"]["selector"]["matchLabels"]
            chosen = [s for s in services.values() if labels.items() <= s["metadata"]["labels"].items()]
            ports = {p.get("name") for s in chosen for p in s["spec"]["ports"]}
            if not chosen:
                self.add(monitor, "selects no Service")
            for endpoint in monitor["spec"]["endpoints"]:
                if endpoint.get("port") not in ports:
                    self.add(monitor, f"port {endpoint.get('port')} is not a port of its Services")

    @staticmethod
    def selects(labels: dict[str, str], deployments: Iterable[dict[str, Any]]) -> bool:
        return any(labels.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                   for d in deployments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lint_deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--kustomize", type=Path, required=True, help="the kustomize binary")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to check")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    problems = Problems()
    lint_dockerfiles(root, problems)
    lint_compose(root, problems)
    lint_overlays(root, args.kustomize, problems)
    for line in problems:
        print(line)
    overlays = ", ".join(p.name for p in sorted((root / "deploy/k8s/overlays").iterdir()))
    print(f"lint-deploy: {len(problems)} problem(s) in {len(dockerfiles(root))} Dockerfiles, "
          f"docker-compose.yml and overlays {overlays}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
