from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from taskmill.schema import is_task_id, iso, new_task_id


def test_task_id_is_ts_service_uuid4_hex():
    """It makes ids `ts_<service>_<uuid4 hex>` and recognises them."""
    task_id = new_task_id("aaa", uuidgen=lambda: UUID("12345678123456781234567812345678"))
    assert task_id == "ts_aaa_12345678123456781234567812345678"
    assert is_task_id(task_id)
    assert is_task_id(new_task_id("search_user"))


def test_malformed_ids_are_not_task_ids():
    """It refuses ids that could not have been made by new_task_id."""
    for bad in ["", "ts_aaa_", "ts_AAA_" + "0" * 32, "ts_aaa_" + "g" * 32, {"$ne": None}, 7]:
        assert not is_task_id(bad)


def test_iso_is_utc_with_milliseconds_and_z():
    """It formats times as the contract does."""
    when = datetime(2026, 11, 28, 6, 30, 0, 123456, tzinfo=UTC)
    assert iso(when) == "2026-11-28T06:30:00.123Z"
    east = datetime(2026, 11, 28, 14, 30, 0, 123000, tzinfo=timezone(timedelta(hours=8)))
    assert iso(east) == "2026-11-28T06:30:00.123Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert iso(None) is None
