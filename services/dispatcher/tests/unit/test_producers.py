"""The relay's two producers (share-group services' topics and the others') flushed as one."""

import threading

from taskmill.config import load_config
from taskmill_dispatcher.producers import Producers
from tests.helpers import write_config


class Silent:
    """A producer whose broker answers nothing: a flush waits out its timeout."""

    def __init__(self, made: list["Silent"]) -> None:
        self.timeouts: list[float] = []
        made.append(self)

    def flush(self, timeout: float) -> int:
        self.timeouts.append(timeout)
        threading.Event().wait(timeout)
        return 1


def test_a_flush_waits_its_timeout_in_all_not_once_per_producer(tmp_path):
    """A dispatcher stopping flushes for `shutdown_grace_s`: with a share-group service the
    second producer gets what the first left of it, not the whole grace again."""
    config = load_config(write_config(tmp_path / "config.yaml",
                                      extra={"kafka": {"modes": {"aaa": "share_group"}}}), {})
    made: list[Silent] = []
    producers = Producers(config, 10.0, make=lambda conf: Silent(made))
    assert producers.flush(0.3) == 2  # both still hold their message
    first, second = made
    assert first.timeouts[0] > 0.25 and second.timeouts[0] < 0.05
