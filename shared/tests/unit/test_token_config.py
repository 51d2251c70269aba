"""Named tokens as configured: hashes or variables (never values in the file), roles,
services, limits; AUTH_TOKEN as the original's admin; every mistake named at start-up."""

import pytest

from taskmill.config import load_config
from taskmill.errors import ConfigError
from taskmill.token_config import Role, digest, file_entries, parse_tokens
from tests.helpers import write_config

SERVICES = ["aaa", "bbb"]


def parse(entries, env=None):
    return parse_tokens([(f"tokens[{i}]", e) for i, e in enumerate(entries)], env or {}, SERVICES)


def test_hashes_variables_and_the_original_token():
    tokens = parse([{"name": "alice", "role": "client", "sha256": digest("a-secret")},
                    {"name": "w", "role": "worker", "services": ["aaa"], "env": "W_TOKEN",
                     "rate_per_s": 2.5},
                    {"name": "off", "role": "admin", "env": "NOT_SET"}],
                   {"W_TOKEN": "w-secret", "AUTH_TOKEN": "root"})
    assert [(t.name, t.role) for t in tokens] == [("AUTH_TOKEN", Role.ADMIN), ("alice", Role.CLIENT),
                                                  ("w", Role.WORKER)]
    worker = tokens[2]
    assert (worker.sha256, worker.services, worker.rate_per_s, worker.burst) == (
        digest("w-secret"), ("aaa",), 2.5, 3)
    assert "w-secret" not in repr(tokens) and digest("w-secret") not in repr(tokens)


@pytest.mark.parametrize("entry, message", [
    ({"name": "A b", "role": "client", "sha256": "0" * 64}, "name must be"),
    ({"name": "a", "role": "root", "sha256": "0" * 64}, "role must be one of"),
    ({"name": "a", "role": "client", "sha256": "xyz"}, "64 lower-case hex"),
    ({"name": "a", "role": "client"}, "exactly one of sha256"),
    ({"name": "a", "role": "client", "sha256": "0" * 64, "env": "X"}, "exactly one of sha256"),
    ({"name": "a", "role": "client", "value": "plain"}, "value is not a known setting"),
    ({"name": "a", "role": "worker", "sha256": "0" * 64}, "needs the services"),
    ({"name": "a", "role": "worker", "services": ["zzz"], "sha256": "0" * 64}, "zzz is not a configured"),
    ({"name": "a", "role": "client", "services": ["aaa"], "sha256": "0" * 64}, "only for worker"),
    ({"name": "a", "role": "client", "sha256": "0" * 64, "rate_per_s": 0}, "positive number"),
    ({"name": "a", "role": "client", "sha256": "0" * 64, "burst": 3}, "burst needs rate_per_s"),
])
def test_mistakes_are_named(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse([entry])


def test_names_and_values_are_unique():
    same = {"role": "client", "sha256": digest("x")}
    with pytest.raises(ConfigError, match="more than once"):
        parse([{"name": "a", **same}, {"name": "a", "role": "admin", "sha256": digest("y")}])
    with pytest.raises(ConfigError, match="same value"):
        parse([{"name": "a", **same}, {"name": "b", **same}])


def test_the_shipped_config_and_a_tokens_file(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: ops, role: admin, sha256: {digest('ops')}}}\n")
    config = load_config(write_config(tmp_path / "config.yaml"),
                         {"CLIENT_TOKEN": "c", "WORKER_TOKEN_BBB": "b", "TASKMILL_TOKENS_FILE": str(path)})
    assert [t.name for t in config.tokens] == ["client", "worker-bbb", "ops"]
    assert config.worker_token == ""  # neither WORKER_TOKEN nor AUTH_TOKEN
    assert load_config(write_config(tmp_path / "config.yaml"), {"AUTH_TOKEN": "r", "WORKER_TOKEN": "w"}
                       ).worker_token == "w"
    path.write_text("tokens: {}\n")
    with pytest.raises(ConfigError, match="list `tokens`"):
        file_entries(str(path))
