"""The orders report on a real MariaDB, over rows this test writes and sums itself."""

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from taskmill.config import SourcesConfig
from taskmill.worker import TaskContext
from taskmill.worker.sources import Sources
from taskmill_worker_bbb.report import orders_report

pytestmark = pytest.mark.integration

CUSTOMERS = [(1, "Ada", "DE"), (2, "Bo", "FR"), (3, "Cy", "DE")]
ORDERS = [  # id, customer, amount, status, created
    (1, 1, "10.50", "paid", "2026-01-03"),
    (2, 1, "4.25", "refunded", "2026-01-20"),
    (3, 2, "100.00", "paid", "2026-02-01"),
    (4, 3, "0.75", "paid", "2026-02-28"),
    (5, 2, "7.00", "open", "2026-03-15"),
]


@pytest.fixture
def sources(mysql_settings: dict[str, Any], empty_mysql_database: str) -> Iterator[Sources]:
    """The worker's own source opener, on a database holding exactly ORDERS and CUSTOMERS."""
    with pymysql.connect(**{**mysql_settings, "database": empty_mysql_database},
                         autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
                       " country CHAR(2) NOT NULL)")
        cursor.execute("CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
                       " amount DECIMAL(10,2) NOT NULL, status VARCHAR(16) NOT NULL,"
                       " created_at DATE NOT NULL)")
        cursor.executemany("INSERT INTO customers VALUES (%s, %s, %s)", CUSTOMERS)
        cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", ORDERS)
    opened = Sources(SourcesConfig(
        mysql_host=mysql_settings["host"], mysql_port=mysql_settings["port"],
        mysql_user=mysql_settings["user"], mysql_password=mysql_settings["password"],
        mysql_database=empty_mysql_database))
    yield opened
    opened.close()


def report(sources: Sources, condition: dict[str, Any]) -> dict[str, Any]:
    ctx = TaskContext("ts_bbb_" + "0" * 32, "bbb", 1, "mysql", lambda: sources.get("mysql"),
                      lambda fraction, message: None)
    return orders_report(condition, ctx)


def expected(key, rows=ORDERS) -> dict[str, tuple[int, float]]:
    """Count and sum ORDERS per key(order), in Python."""
    country = {c[0]: c[2] for c in CUSTOMERS}
    groups: dict[str, tuple[int, float]] = {}
    for order in rows:
        k = key(order, country)
        count, total = groups.get(k, (0, 0.0))
        groups[k] = (count + 1, round(total + float(order[2]), 2))
    return groups


def as_groups(result: dict[str, Any]) -> dict[str, tuple[int, float]]:
    return {row["key"]: (row["orders"], row["amount"]) for row in result["rows"]}


@pytest.mark.parametrize("group_by, key", [
    ("country", lambda o, country: country[o[1]]),
    ("status", lambda o, country: o[3]),
    ("month", lambda o, country: o[4][:7]),
])
def test_groups_count_and_sum_every_order(sources, group_by, key):
    result = report(sources, {"group_by": group_by})
    assert as_groups(result) == expected(key)
    assert [row["key"] for row in result["rows"]] == sorted(expected(key))
    assert result["total_orders"] == len(ORDERS)
    assert result["total_amount"] == round(sum(float(o[2]) for o in ORDERS), 2)


def test_filters_narrow_the_orders(sources):
    result = report(sources, {"group_by": "status", "country": "DE",
                              "since": "2026-01-10", "until": "2026-03-01"})
    kept = [o for o in ORDERS if o[1] in (1, 3) and "2026-01-10" <= o[4] < "2026-03-01"]
    assert as_groups(result) == expected(lambda o, country: o[3], kept)


def test_a_hostile_value_is_data_not_sql(sources):
    """A condition value is only ever a bound parameter: an injection matches nothing and
    the tables are still there."""
    assert report(sources, {"country": "DE' OR '1'='1"})["rows"] == []
    assert report(sources, {})["total_orders"] == len(ORDERS)


def test_a_connection_the_server_dropped_is_opened_again(sources, mysql_admin_socket):
    """Between two tasks the server may close the worker's connection (wait_timeout, a
    restart): the next task gets a new one."""
    first = sources.get("mysql")
    with pymysql.connect(unix_socket=mysql_admin_socket, user="root") as admin, \
            admin.cursor() as cursor:
        cursor.execute("KILL %s", (first.thread_id(),))
    assert report(sources, {})["total_orders"] == len(ORDERS)
    assert sources.get("mysql").thread_id() != first.thread_id()


@pytest.mark.parametrize("group_by", ["country", "status", "month"])
def test_a_paced_report_is_the_same_report_one_group_at_a_time(sources, group_by):
    """With pause_s, one query per group and progress after each; the same rows."""
    progress: list[float] = []
    ctx = TaskContext("ts_bbb_" + "0" * 32, "bbb", 1, "mysql", lambda: sources.get("mysql"),
                      lambda fraction, message: progress.append(fraction))
    paced = orders_report({"group_by": group_by, "status": "paid", "pause_s": 0.01}, ctx)
    assert paced == report(sources, {"group_by": group_by, "status": "paid"})
    assert progress == [n / len(paced["rows"]) for n in range(1, len(paced["rows"]) + 1)]
