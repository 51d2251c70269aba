import logging
from pathlib import Path

import pytest
import yaml

from taskmill.config import DEFAULT_CONFIG_PATH, load_config, parse_config
from taskmill.errors import ConfigError


def shipped() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_shipped_config_has_the_two_example_services():
    """The shipped file configures aaa (mongo) and bbb (mysql), each with its own group."""
    config = load_config(environ={})
    assert list(config.services) == ["aaa", "bbb"]
    assert config.service("aaa").topic_name == "mq_aaa"
    assert config.service("bbb").consumer_id == "c_bbb"
    assert config.service("bbb").source_name == "mysql"
    assert config.max_status_task == 10
    assert config.env == "TEST"
    assert config.mongo.dbname == config.mongo.collection == "dev_task"


def test_environment_overrides_the_file():
    """Secrets and addresses come from the environment."""
    config = parse_config(shipped(), {
        "TASKMILL_ENV": "PRODUCTION", "MONGO_HOST": "db.internal", "MONGO_USERNAME": "u",
        "MONGO_PASSWORD": "p@ss word", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092",
        "KAFKA_SASL_USERNAME": "key", "KAFKA_SASL_PASSWORD": "secret", "AUTH_TOKEN": "tok",
        "MONGO_COLLECTION": "tasks", "SOURCE_MYSQL_PORT": "3307",
    })
    assert config.env == "PRODUCTION"
    assert config.mongo.uri == "mongodb://u:p%40ss+word@db.internal:27017/"
    assert (config.mongo.dbname, config.mongo.collection) == ("prod_task", "tasks")
    assert config.kafka.bootstrap_servers == ("k1:9092", "k2:9092")
    assert config.kafka.sasl_username == "key"
    assert config.worker_token == "tok"  # AUTH_TOKEN without WORKER_TOKEN
    assert config.sources.mysql_port == 3307


def test_mongo_uri_wins_over_host_settings():
    """MONGO_URI replaces host, port and credentials."""
    config = parse_config(shipped(), {"MONGO_URI": "mongodb://x:27018/?replicaSet=rs0"})
    assert config.mongo.uri == "mongodb://x:27018/?replicaSet=rs0"


def test_secrets_never_show_in_repr():
    """Printing or logging the config does not leak a secret."""
    config = parse_config(shipped(), {"AUTH_TOKEN": "tok-123", "MONGO_PASSWORD": "pw-456",
                                      "MONGO_USERNAME": "u", "KAFKA_SASL_PASSWORD": "k-789",
                                      "SOURCE_MYSQL_PASSWORD": "m-000"})
    text = repr(config)
    for secret in ("tok-123", "pw-456", "k-789", "m-000"):
        assert secret not in text


@pytest.mark.parametrize("change, key", [
    (lambda raw: raw.pop("max_status_task"), "max_status_task"),
    (lambda raw: raw["source_db"]["bbb"].pop("topic_name"), "source_db.bbb.topic_name"),
    (lambda raw: raw["TEST"].update(MONGO_PORT="many"), "TEST.MONGO_PORT"),
    (lambda raw: raw.update(default_env="DEV"), "default_env"),
    (lambda raw: raw.update(service="aaa"), "service"),
    (lambda raw: raw["service"].append("Bad Name"), "service[2]"),
    (lambda raw: raw["source_db"].pop("aaa"), "source_db.aaa"),
    (lambda raw: raw["taskmill"]["lifecycle"].update(lease_s=-1), "taskmill.lifecycle.lease_s"),
    (lambda raw: raw["taskmill"]["lifecycle"].update(leese_s=5), "taskmill.lifecycle.leese_s"),
    (lambda raw: raw["mq_conf"].update(bootstrap_servers=[]), "mq_conf.bootstrap_servers"),
    (lambda raw: raw["taskmill"]["retention"].update(failed_days=0), "taskmill.retention.failed_days"),
    (lambda raw: raw["taskmill"]["retention"].update(per_service={"ccc": {"failed_days": 1}}),
     "taskmill.retention.per_service.ccc"),
    (lambda raw: raw["taskmill"]["retention"].update(per_service={"aaa": {"finished": 1}}),
     "taskmill.retention.per_service.aaa.finished"),
    (lambda raw: raw["taskmill"]["retention"].update(per_service={"aaa": {"failed_days": -2}}),
     "taskmill.retention.per_service.aaa"),
    (lambda raw: raw["taskmill"]["kafka"].update(mode="queue"), "taskmill.kafka.mode"),
    (lambda raw: raw["taskmill"]["kafka"].update(modes={"aaa": "shared"}), "taskmill.kafka.modes.aaa"),
    (lambda raw: raw["taskmill"]["kafka"].update(modes={"ccc": "share_group"}), "taskmill.kafka.modes.ccc"),
])
def test_a_bad_file_fails_naming_the_key(change, key):
    """Every bad or missing value is a ConfigError that names its key."""
    raw = shipped()
    change(raw)
    with pytest.raises(ConfigError) as error:
        parse_config(raw, {})
    assert key in str(error.value)


def test_each_service_reads_its_topic_in_the_default_mode_or_its_own():
    """Consumer groups unless told; `modes` names a service's own."""
    raw = shipped()
    assert {s.mode for s in parse_config(raw, {}).services.values()} == {"consumer_group"}
    raw["taskmill"]["kafka"].update(mode="share_group", modes={"bbb": "consumer_group"})
    config = parse_config(raw, {})
    assert (config.service("aaa").shared, config.service("bbb").shared) == (True, False)


def test_unreadable_or_invalid_files_fail_clearly(tmp_path: Path):
    """A missing file or broken YAML fails at start-up with the path."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("service: [aaa\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, {})


def test_shared_consumer_group_warns(caplog):
    """The original's slip (bbb in group c_aaa) is accepted with a warning."""
    raw = shipped()
    raw["source_db"]["bbb"]["consumer_id"] = "c_aaa"
    with caplog.at_level(logging.WARNING):
        parse_config(raw, {})
    assert "share consumer group 'c_aaa'" in caplog.text


def test_retention_days_are_per_service_where_configured():
    raw = shipped()
    raw["taskmill"]["retention"].update(finished_days=20, per_service={"aaa": {"finished_days": 2}})
    retention = parse_config(raw, {}).retention
    assert (retention.days("aaa", "finished"), retention.days("aaa", "failed")) == (2.0, 90.0)
    assert (retention.days("bbb", "finished"), retention.days("bbb", "failed")) == (20.0, 90.0)
