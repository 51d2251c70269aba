"""Load the configuration once: the YAML of the original design plus environment overrides.

The file has exactly the original's shape (`default_env`, `service`, `source_db`,
`max_status_task`, `mq_conf`, and `TEST` / `STAGE` / `PRODUCTION` blocks of `MONGO_*`);
Taskmill's own settings live under an optional `taskmill:` key. Secrets and addresses
come from the environment (see `ENV_OVERRIDES`). A bad value fails at start-up with a
`ConfigError` that names the key. Nothing else in Taskmill reads `os.environ`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_plus

import yaml

from taskmill.errors import ConfigError
from taskmill.schema import SERVICE_NAME
from taskmill.token_config import TokenConfig, file_entries, parse_tokens

log = logging.getLogger(__name__)

ENVIRONMENTS = ("TEST", "STAGE", "PRODUCTION")
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[3] / "config" / "config.yaml"

# Environment variables that override the file (documented in the README).
ENV_OVERRIDES = (
    "TASKMILL_CONFIG", "TASKMILL_ENV", "AUTH_TOKEN", "TASKMILL_TOKENS_FILE", "WORKER_TOKEN",
    "MONGO_URI", "MONGO_HOST", "MONGO_PORT", "MONGO_USERNAME", "MONGO_PASSWORD",
    "MONGO_DBNAME", "MONGO_COLLECTION",
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
    "SOURCE_MONGO_URI", "SOURCE_MONGO_DBNAME",
    "SOURCE_MYSQL_HOST", "SOURCE_MYSQL_PORT", "SOURCE_MYSQL_USER", "SOURCE_MYSQL_PASSWORD",
    "SOURCE_MYSQL_DATABASE", "TASKMILL_API_URL",
)

T = TypeVar("T")


# How a service's workers take its tasks from its topic (`taskmill.kafka.mode`, per
# service `taskmill.kafka.modes`): a consumer group (each partition read by one worker)
# or a share group (Kafka >= 4.2: every worker takes records from every partition).
CONSUMER_GROUP = "consumer_group"
SHARE_GROUP = "share_group"
KAFKA_MODES = (CONSUMER_GROUP, SHARE_GROUP)


@dataclass(frozen=True)
class ServiceConfig:
    """One algorithm service: where its tasks go and who consumes them."""

    name: str
    source_name: str
    topic_name: str
    consumer_id: str  # the workers' group: a consumer group or a share group, by `mode`
    mode: str = CONSUMER_GROUP

    @property
    def shared(self) -> bool:
        """Whether the service's workers form a share group."""
        return self.mode == SHARE_GROUP


@dataclass(frozen=True)
class MongoConfig:
    """Where the task store lives."""

    uri: str = field(repr=False)
    dbname: str
    collection: str
    timeout_ms: int


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka. With SASL credentials: SASL_SSL/PLAIN, else PLAINTEXT."""

    bootstrap_servers: tuple[str, ...]
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    partitions: int = 4
    # How long a silent worker keeps its partitions before the group hands them on.
    session_timeout_ms: int = 30000


@dataclass(frozen=True)
class LifecycleConfig:
    """Timing and retry knobs of a task's life."""

    lease_s: float = 60.0
    heartbeat_s: float = 5.0
    max_attempts: int = 3
    waiting_timeout_s: float = 86400.0
    recovery_interval_s: float = 5.0
    stats_interval_s: float = 15.0
    count_check_s: float = 300.0
    counts_flush_s: float = 0.05
    dispatch_claim_s: float = 30.0
    dispatch_poll_s: float = 0.05
    shutdown_grace_s: float = 25.0
    stall_s: float = 120.0
    cancel_grace_s: float = 30.0
    # Published tasks a service may have waiting on Kafka, per worker: about lookahead_s of
    # its recent run time, within [min, max]; the rest of its backlog stays in the store,
    # ordered by priority.
    lookahead_s: float = 1.0
    min_waiting_per_worker: int = 1
    max_waiting_per_worker: int = 100
    # The most tasks a worker of quick tasks claims at once from its backlog (one request
    # says a batch's outcomes and the next batch's running; at most max_status_task / 2).
    worker_batch: int = 5


@dataclass(frozen=True)
class RetryConfig:
    """A service's retries of a failed run (opt in: one attempt means no retry)."""

    max_attempts: int = 1
    backoff_s: float = 10.0

    def delay_s(self, attempts: int) -> float:
        """The wait before the next attempt, after `attempts` failed ones (doubling)."""
        return self.backoff_s * 2 ** (attempts - 1)


@dataclass(frozen=True)
class RetentionDays:
    """How long tasks that ended finished, or failed, are kept."""

    finished_days: float = 30.0
    failed_days: float = 90.0


@dataclass(frozen=True)
class RetentionConfig(RetentionDays):
    """How long ended tasks are kept (per service where it says), and how the dispatcher
    deletes them (in batches)."""

    interval_s: float = 60.0
    batch_size: int = 500
    per_service: Mapping[str, RetentionDays] = field(default_factory=dict)

    def days(self, service: str, status: str) -> float:
        """How many days a task of this service that ended in this status is kept."""
        return float(getattr(self.per_service.get(service, self), f"{status}_days"))


# The most failed runs in a row a breaker may wait for (the store remembers this many).
MAX_BREAKER_FAILURES = 100


@dataclass(frozen=True)
class BreakerConfig:
    """When the dispatcher stops publishing a service's tasks: after `failures` failed runs
    in a row, for `cooldown_s` (doubled after each failed trial, up to `max_cooldown_s`)."""

    failures: int = 10
    cooldown_s: float = 60.0
    max_cooldown_s: float = 600.0


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the HTTP api."""

    max_body_bytes: int = 1024 * 1024
    # The largest condition (bytes of its JSON): every started task fits in one Kafka message.
    max_condition_bytes: int = 256 * 1024
    url: str = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SourcesConfig:
    """The data sources the example algorithms read (not the task store)."""

    mongo_uri: str = field(default="mongodb://127.0.0.1:27017/", repr=False)
    mongo_dbname: str = "taskmill_sample"
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "taskmill"
    mysql_password: str = field(default="", repr=False)
    mysql_database: str = "taskmill_sample"


@dataclass(frozen=True)
class Config:
    """Everything Taskmill's processes are configured with."""

    env: str
    services: Mapping[str, ServiceConfig]
    max_status_task: int
    mongo: MongoConfig
    kafka: KafkaConfig
    # The api's tokens (hashes only; AUTH_TOKEN's among them when set), and the token a
    # worker reports with: WORKER_TOKEN, else AUTH_TOKEN.
    tokens: tuple[TokenConfig, ...] = ()
    worker_token: str = field(default="", repr=False)
    lifecycle: LifecycleConfig = LifecycleConfig()
    api: ApiConfig = ApiConfig()
    sources: SourcesConfig = SourcesConfig()
    retries: Mapping[str, RetryConfig] = field(default_factory=dict)
    retention: RetentionConfig = RetentionConfig()
    breaker: BreakerConfig = BreakerConfig()

    def service(self, name: str) -> ServiceConfig:
        """Return the named service's settings (KeyError when not configured)."""
        return self.services[name]

    def retry(self, service: str) -> RetryConfig:
        """The service's retry policy (none unless configured)."""
        return self.retries.get(service, NO_RETRY)


NO_RETRY = RetryConfig()


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file, apply environment overrides, check every value."""
    env = os.environ if environ is None else environ
    path = Path(path or env.get("TASKMILL_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as ex:
        raise ConfigError(f"cannot read config file {path}: {ex.strerror}") from ex
    except yaml.YAMLError as ex:
        raise ConfigError(f"config file {path} is not valid YAML: {ex}") from ex
    return parse_config(_mapping(raw, "<top level>"), env)


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Build a Config from the parsed YAML and the environment."""
    env_name = env.get("TASKMILL_ENV") or _get(raw, "default_env", str)
    if env_name not in ENVIRONMENTS:
        raise ConfigError(f"default_env / TASKMILL_ENV must be one of {', '.join(ENVIRONMENTS)}, "
                          f"not {env_name!r}")
    extra = _mapping(raw.get("taskmill") or {}, "taskmill")
    services = _with_modes(_services(raw), extra)
    max_status = _get(raw, "max_status_task", int)
    if max_status < 1:
        raise ConfigError("max_status_task must be at least 1")
    return Config(
        env=env_name,
        services=services,
        max_status_task=max_status,
        mongo=_mongo(_mapping(raw.get(env_name), env_name), env_name, env, extra),
        kafka=_kafka(_mapping(raw.get("mq_conf"), "mq_conf"), env, extra),
        tokens=_tokens(extra, env, services),
        worker_token=env.get("WORKER_TOKEN") or env.get("AUTH_TOKEN", ""),
        lifecycle=_section(LifecycleConfig, extra, "lifecycle"),
        api=_api(extra, env),
        sources=_sources(extra, env),
        retries=_retries(extra, services),
        retention=_retention(extra, services),
        breaker=_breaker(extra),
    )


def _services(raw: Mapping[str, Any]) -> dict[str, ServiceConfig]:
    names = _get(raw, "service", list)
    source_db = _mapping(raw.get("source_db"), "source_db")
    services: dict[str, ServiceConfig] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise ConfigError(f"service[{i}] must be a lower-case name ([a-z][a-z0-9_]*), "
                              f"not {name!r}")
        entry = _mapping(source_db.get(name), f"source_db.{name}")
        services[name] = ServiceConfig(
            name=name,
            source_name=_get(entry, "source_name", str, f"source_db.{name}."),
            topic_name=_get(entry, "topic_name", str, f"source_db.{name}."),
            consumer_id=_get(entry, "consumer_id", str, f"source_db.{name}."),
        )
    if not services:
        raise ConfigError("service must list at least one service")
    groups = Counter(s.consumer_id for s in services.values())
    for group, count in groups.items():
        if count > 1:
            log.warning("config: %d services share consumer group %r; each service should "
                        "have its own consumer_id", count, group)
    return services


def _with_modes(services: dict[str, ServiceConfig], extra: Mapping[str, Any]) -> dict[str, ServiceConfig]:
    """Each service's consumption mode: taskmill.kafka.modes.<service>, else .mode."""
    kafka = _mapping(extra.get("kafka") or {}, "taskmill.kafka")
    modes = _mapping(kafka.get("modes") or {}, "taskmill.kafka.modes")
    for name in modes:
        if name not in services:
            raise ConfigError(f"taskmill.kafka.modes.{name}: not a configured service")
    default = _mode(kafka.get("mode", CONSUMER_GROUP), "taskmill.kafka.mode")
    return {name: replace(service, mode=_mode(modes.get(name, default), f"taskmill.kafka.modes.{name}"))
            for name, service in services.items()}


def _mode(value: Any, key: str) -> str:
    if value not in KAFKA_MODES:
        raise ConfigError(f"{key} must be one of {', '.join(KAFKA_MODES)}, not {value!r}")
    return str(value)


def _mongo(block: Mapping[str, Any], env_name: str, env: Mapping[str, str],
           extra: Mapping[str, Any]) -> MongoConfig:
    def setting(key: str, kind: type[T]) -> T:
        if key in env:
            return _convert(env[key], kind, key)
        return _get(block, key, kind, f"{env_name}.")

    dbname = setting("MONGO_DBNAME", str)
    collection = env.get("MONGO_COLLECTION") or block.get("MONGO_COLLECTION") or dbname
    uri = env.get("MONGO_URI")
    if not uri:
        host, port = setting("MONGO_HOST", str), setting("MONGO_PORT", int)
        user = env.get("MONGO_USERNAME", block.get("MONGO_USERNAME") or "")
        password = env.get("MONGO_PASSWORD", block.get("MONGO_PASSWORD") or "")
        auth = f"{quote_plus(str(user))}:{quote_plus(str(password))}@" if user else ""
        uri = f"mongodb://{auth}{host}:{port}/"
    timeout_ms = _get(extra, "mongo_timeout_ms", int, "taskmill.", default=3000)
    return MongoConfig(uri=uri, dbname=dbname, collection=str(collection), timeout_ms=timeout_ms)


def _kafka(block: Mapping[str, Any], env: Mapping[str, str], extra: Mapping[str, Any]) -> KafkaConfig:
    if "KAFKA_BOOTSTRAP_SERVERS" in env:
        servers = [s.strip() for s in env["KAFKA_BOOTSTRAP_SERVERS"].split(",") if s.strip()]
    else:
        servers = _get(block, "bootstrap_servers", list, "mq_conf.")
    if not servers or not all(isinstance(s, str) and s for s in servers):
        raise ConfigError("mq_conf.bootstrap_servers must be a non-empty list of host:port")
    kafka_extra = _mapping(extra.get("kafka") or {}, "taskmill.kafka")
    return KafkaConfig(
        bootstrap_servers=tuple(servers),
        sasl_username=env.get("KAFKA_SASL_USERNAME", block.get("sasl_plain_username") or ""),
        sasl_password=env.get("KAFKA_SASL_PASSWORD", block.get("sasl_plain_password") or ""),
        partitions=_get(kafka_extra, "partitions", int, "taskmill.kafka.", default=4),
        session_timeout_ms=_get(kafka_extra, "session_timeout_ms", int, "taskmill.kafka.",
                                default=30000),
    )


def _api(extra: Mapping[str, Any], env: Mapping[str, str]) -> ApiConfig:
    api = _section(ApiConfig, extra, "api")
    if "TASKMILL_API_URL" in env:
        api = replace(api, url=env["TASKMILL_API_URL"])
    return api


def _sources(extra: Mapping[str, Any], env: Mapping[str, str]) -> SourcesConfig:
    block = _mapping(extra.get("sources") or {}, "taskmill.sources")
    mongo = _mapping(block.get("mongo") or {}, "taskmill.sources.mongo")
    mysql = _mapping(block.get("mysql") or {}, "taskmill.sources.mysql")
    d = SourcesConfig()
    values: dict[str, Any] = {
        "mongo_uri": mongo.get("uri", d.mongo_uri), "mongo_dbname": mongo.get("dbname", d.mongo_dbname),
        "mysql_host": mysql.get("host", d.mysql_host), "mysql_port": mysql.get("port", d.mysql_port),
        "mysql_user": mysql.get("user", d.mysql_user), "mysql_password": d.mysql_password,
        "mysql_database": mysql.get("database", d.mysql_database),
    }
    for key in values:
        if f"SOURCE_{key.upper()}" in env:
            values[key] = env[f"SOURCE_{key.upper()}"]
    values["mysql_port"] = _convert(values["mysql_port"], int, "taskmill.sources.mysql.port")
    return SourcesConfig(**values)


def _retries(extra: Mapping[str, Any], services: Mapping[str, ServiceConfig]) -> dict[str, RetryConfig]:
    block = _mapping(extra.get("retries") or {}, "taskmill.retries")
    unknown = set(block) - set(services)
    if unknown:
        raise ConfigError(f"taskmill.retries.{sorted(unknown)[0]} is not a configured service")
    return {name: _section(RetryConfig, block, name, prefix="taskmill.retries.") for name in block}


def _retention(extra: Mapping[str, Any], services: Mapping[str, ServiceConfig]) -> RetentionConfig:
    block = dict(_mapping(extra.get("retention") or {}, "taskmill.retention"))
    per = _mapping(block.pop("per_service", None) or {}, "taskmill.retention.per_service")
    base = _section(RetentionConfig, {"retention": block}, "retention")
    unknown = set(per) - set(services)
    if unknown:
        raise ConfigError(f"taskmill.retention.per_service.{sorted(unknown)[0]} is not a "
                          "configured service")
    defaults = RetentionDays(base.finished_days, base.failed_days)
    return replace(base, per_service={
        name: _section(RetentionDays, per, name, "taskmill.retention.per_service.", defaults)
        for name in per})


def _tokens(extra: Mapping[str, Any], env: Mapping[str, str],
            services: Mapping[str, ServiceConfig]) -> tuple[TokenConfig, ...]:
    listed = extra.get("tokens") or []
    if not isinstance(listed, list):
        raise ConfigError("taskmill.tokens must be a list")
    entries = [(f"taskmill.tokens[{i}]", entry) for i, entry in enumerate(listed)]
    if env.get("TASKMILL_TOKENS_FILE"):
        entries += file_entries(env["TASKMILL_TOKENS_FILE"])
    return parse_tokens(entries, env, services)


def _breaker(extra: Mapping[str, Any]) -> BreakerConfig:
    breaker = _section(BreakerConfig, extra, "breaker")
    if breaker.failures > MAX_BREAKER_FAILURES:
        raise ConfigError(f"taskmill.breaker.failures must be at most {MAX_BREAKER_FAILURES}")
    return breaker


def _section(kind: type[T], extra: Mapping[str, Any], key: str, prefix: str = "taskmill.",
             defaults: T | None = None) -> T:
    """The dataclass `kind` from extra[key]: every setting known, typed and positive; the
    ones left out from `defaults` (else the class's)."""
    block = _mapping(extra.get(key) or {}, f"{prefix}{key}")
    defaults = kind() if defaults is None else defaults
    fields = {f: type(getattr(defaults, f)) for f in kind.__dataclass_fields__}  # type: ignore[attr-defined]
    unknown = set(block) - set(fields)
    if unknown:
        raise ConfigError(f"{prefix}{key}.{sorted(unknown)[0]} is not a known setting")
    values = {name: _convert(block[name], fields[name], f"{prefix}{key}.{name}") for name in block}
    for name, value in values.items():
        if isinstance(value, int | float) and value <= 0:
            raise ConfigError(f"{prefix}{key}.{name} must be positive")
    return replace(defaults, **values)


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, not {type(value).__name__}")
    return value


_MISSING = object()


def _get(block: Mapping[str, Any], key: str, kind: type[T], prefix: str = "",
         default: Any = _MISSING) -> T:
    if key not in block:
        if default is _MISSING:
            raise ConfigError(f"config key {prefix}{key} is missing, and has no default")
        return default  # type: ignore[no-any-return]
    return _convert(block[key], kind, prefix + key)


def _convert(value: Any, kind: type[T], key: str) -> T:
    if isinstance(value, str) and kind in (int, float):
        try:
            return kind(value)  # type: ignore[call-arg]
        except ValueError as ex:
            raise ConfigError(f"{key} must be {kind.__name__}, not {value!r}") from ex
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # type: ignore[return-value]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {kind.__name__}, not {type(value).__name__}")
    return value
