"""Named api tokens and their roles, as configured (never their values in clear).

Each token is `{name, role, sha256 | env, services?, rate_per_s?, burst?}`, listed under
`taskmill.tokens` in the config file or under `tokens` in the YAML file that
`TASKMILL_TOKENS_FILE` names (a mounted Secret, say). `sha256` is the hex digest of the
token's value; `env` names an environment variable that holds the value (the value is
hashed at once and not kept): a token whose variable is unset or empty is not active.
Roles: `client` (the clients' routes), `worker` (reports on the tasks of the `services`
it lists), `admin` (everything). `AUTH_TOKEN`, when set, is the original's single token:
an admin named `AUTH_TOKEN`. `rate_per_s` limits a token's requests (`burst` at once,
default the rate rounded up).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from taskmill.errors import ConfigError

LEGACY_NAME = "AUTH_TOKEN"
TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
KEYS = {"name", "role", "sha256", "env", "services", "rate_per_s", "burst"}


class Role(StrEnum):
    CLIENT = "client"
    WORKER = "worker"
    ADMIN = "admin"


@dataclass(frozen=True)
class TokenConfig:
    """One named token: who it is, what it may do, how fast."""

    name: str
    role: Role
    sha256: str = field(repr=False)  # hex digest of the token's value
    services: tuple[str, ...] = ()  # a worker's services
    rate_per_s: float | None = None  # None: no limit
    burst: int = 0

    @property
    def limited(self) -> bool:
        return self.rate_per_s is not None


def digest(value: str) -> str:
    """The hex SHA-256 of a token's value."""
    return hashlib.sha256(value.encode()).hexdigest()


def parse_tokens(entries: Iterable[tuple[str, Any]], env: Mapping[str, str],
                 services: Iterable[str]) -> tuple[TokenConfig, ...]:
    """The active tokens of these (where, entry) pairs, and AUTH_TOKEN's when set."""
    known = set(services)
    tokens: list[TokenConfig] = []
    if env.get(LEGACY_NAME):
        tokens.append(TokenConfig(LEGACY_NAME, Role.ADMIN, digest(env[LEGACY_NAME])))
    for where, entry in entries:
        token = _token(where, entry, env, known)
        if token is not None:
            tokens.append(token)
    twice = [name for name, n in Counter(t.name for t in tokens).items() if n > 1]
    if twice:
        raise ConfigError(f"token {twice[0]!r} is configured more than once")
    if len({t.sha256 for t in tokens}) != len(tokens):
        raise ConfigError("two configured tokens have the same value; each needs its own")
    return tuple(tokens)


def file_entries(path: str) -> list[tuple[str, Any]]:
    """The token entries of a tokens file (`tokens: [...]`)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as ex:
        raise ConfigError(f"cannot read tokens file {path}: {ex.strerror}") from ex
    except yaml.YAMLError as ex:
        raise ConfigError(f"tokens file {path} is not valid YAML: {ex}") from ex
    if not isinstance(raw, Mapping) or not isinstance(raw.get("tokens", []), list):
        raise ConfigError(f"tokens file {path} must be a mapping with a list `tokens`")
    return [(f"{path}: tokens[{i}]", entry) for i, entry in enumerate(raw.get("tokens") or [])]


def _token(where: str, entry: Any, env: Mapping[str, str], known: set[str]) -> TokenConfig | None:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(entry) - KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]} is not a known setting")
    name = entry.get("name")
    if not isinstance(name, str) or not TOKEN_NAME.match(name):
        raise ConfigError(f"{where}.name must be lower-case letters, digits, '-' or '_' (up to "
                          f"63), not {name!r}")
    try:
        role = Role(entry.get("role"))
    except ValueError as ex:
        raise ConfigError(f"{where}.role must be one of {', '.join(Role)}") from ex
    services = entry.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ConfigError(f"{where}.services must be a list of service names")
    if role == Role.WORKER and not services:
        raise ConfigError(f"{where}: a worker token needs the services it reports on")
    if role != Role.WORKER and services:
        raise ConfigError(f"{where}.services is only for worker tokens")
    rate, burst = _limit(where, entry)
    sha256 = _sha256(where, entry, env)
    if sha256 is None:
        return None  # not active: its variable is not set here
    if set(services) - known:
        raise ConfigError(f"{where}.services: {sorted(set(services) - known)[0]} is not a "
                          "configured service")
    return TokenConfig(name, role, sha256, tuple(services), rate, burst)


def _sha256(where: str, entry: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    if ("sha256" in entry) == ("env" in entry):
        raise ConfigError(f"{where} needs exactly one of sha256 (the value's hex SHA-256) or "
                          "env (a variable holding the value)")
    if "sha256" in entry:
        value = entry["sha256"]
        if not isinstance(value, str) or not SHA256_HEX.match(value):
            raise ConfigError(f"{where}.sha256 must be 64 lower-case hex digits")
        return value
    variable = entry["env"]
    if not isinstance(variable, str) or not ENV_NAME.match(variable):
        raise ConfigError(f"{where}.env must name an environment variable")
    return digest(env[variable]) if env.get(variable) else None


def _limit(where: str, entry: Mapping[str, Any]) -> tuple[float | None, int]:
    rate, burst = entry.get("rate_per_s"), entry.get("burst")
    if rate is None:
        if burst is not None:
            raise ConfigError(f"{where}.burst needs rate_per_s")
        return None, 0
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ConfigError(f"{where}.rate_per_s must be a positive number")
    if burst is None:
        burst = math.ceil(rate)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ConfigError(f"{where}.burst must be a positive integer")
    return float(rate), burst
