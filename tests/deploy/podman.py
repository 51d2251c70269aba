"""podman, as the image tests drive it: run a service's image the way Kubernetes runs its
pod, ask its HEALTHCHECK, stop it, read its log.

Each container gets a network of its own (slirp4netns, as a pod has), so the four images
can all listen on their own ports; `allow_host_loopback` lets it reach this machine's
loopback at HOST (10.0.2.2), where Kafka's CONTAINERS listener, the task store and
MariaDB answer. Its port is published on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ROOT

HOST = "10.0.2.2"  # this machine's loopback, seen from a container
CONTAINERS_CONF = ROOT / "infra" / "images" / "containers.conf"
TAG = os.environ.get("TASKMILL_IMAGE_TAG", "dev")


def image(service: str) -> str:
    """The name `make images` gives a service's image."""
    return f"localhost/taskmill-{service}:{TAG}"


@dataclass(frozen=True)
class Podman:
    """The podman command, with the project's containers.conf."""

    path: str

    @classmethod
    def find(cls) -> Podman | None:
        found = shutil.which("podman")
        return cls(found) if found else None

    def __call__(self, *args: str, check: bool = True,
                 timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
        return subprocess.run([self.path, *args], env=env, check=check, capture_output=True, text=True,
                              timeout=timeout_s)

    def has(self, name: str) -> bool:
        return self("image", "exists", name, check=False).returncode == 0

    def run_like_a_pod(self, name: str, service: str, port: int, env: Mapping[str, str],
                       config_dir: Path) -> None:
        """Start the service's image detached, as the Kubernetes base runs it: its own
        command, user 10001, a read-only root with a tmpfs /tmp, no capabilities, no
        privilege escalation, the config folder mounted read-only at /etc/taskmill; its
        one exposed port published on 127.0.0.1:port."""
        ports = "{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}"
        exposed = self("image", "inspect", "--format", ports, image(service)).stdout.strip().split("/")[0]
        args = ["run", "--detach", "--name", name, "--user", "10001:10001", "--read-only",
                "--tmpfs", "/tmp:rw,size=64m", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--network", "slirp4netns:allow_host_loopback=true",
                "--publish", f"127.0.0.1:{port}:{exposed}",
                "--volume", f"{config_dir}:/etc/taskmill:ro"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        self(*args, image(service))

    def healthy(self, name: str) -> bool:
        """The image's own HEALTHCHECK, run now (nothing runs it on a timer here)."""
        return self("healthcheck", "run", name, check=False).returncode == 0

    def stop(self, name: str, grace_s: int) -> tuple[int, float]:
        """SIGTERM (SIGKILL after grace_s, as Kubernetes does): the exit code and seconds taken."""
        began = time.monotonic()
        self("stop", "--time", str(grace_s), name, timeout_s=grace_s + 30)
        took = time.monotonic() - began
        return int(self("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()), took

    def logs(self, name: str) -> str:
        answer = self("logs", name, check=False)
        return answer.stdout + answer.stderr

    def remove(self, name: str) -> None:
        self("rm", "--force", "--time", "0", name, check=False)
