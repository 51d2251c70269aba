"""What a service's Dockerfile says about how its image runs (for the deploy tests)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Image:
    """The runtime facts of a Dockerfile's last stage."""

    path: Path
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    expose: list[int] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    user: str = ""
    install: list[str] = field(default_factory=list)  # the `uv sync ...` of the build stage

    @property
    def health_url(self) -> str:
        """The URL the HEALTHCHECK command probes."""
        return next(arg for arg in self.healthcheck if arg.startswith("http://"))

    @property
    def health_port(self) -> int:
        return int(urlsplit(self.health_url).port or 80)

    @property
    def health_path(self) -> str:
        return urlsplit(self.health_url).path


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def parse(path: Path) -> Image:
    """Read the Dockerfile's last stage (and the build stage's `uv sync` command)."""
    image = Image(path)
    for word, args in instructions(path.read_text()):
        if word == "FROM":
            image = Image(path, install=image.install)
        elif word == "RUN" and "uv sync" in args:
            image.install = shlex.split(args[args.index("uv sync"):])
        elif word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                image.env[key] = value
        elif word == "EXPOSE":
            image.expose = [int(p.split("/")[0]) for p in args.split()]
        elif word == "CMD":
            image.cmd = json.loads(args)
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(args[args.index("CMD") + 3:])
        elif word == "USER":
            image.user = args
    return image
