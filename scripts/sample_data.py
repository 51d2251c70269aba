"""The sample data the example workers read, generated deterministically.

    python scripts/sample_data.py mysql         # print SQL for MariaDB: tables and rows
    python scripts/sample_data.py source NAME   # fill the configured source (mongo|mysql),
                                                # opened as the workers open it

Both are idempotent. Tests import `users()`, `customers()` and `orders()` to know what
the sources hold.
"""

from __future__ import annotations

import random
import sys
from datetime import date, timedelta
from typing import Any

FIRST = ["Ada", "Bo", "Chen", "Dara", "Emil", "Fatima", "Goro", "Hana", "Ivan", "Jia"]
CITIES = ["Beijing", "Shanghai", "Berlin", "Lagos", "Lima"]
COUNTRIES = ["CN", "DE", "NG", "PE", "US"]
ORDER_STATUSES = ["paid", "pending", "refunded"]


def users(count: int = 60) -> list[dict[str, Any]]:
    """Return the sample users: user_id, name, city, age, active."""
    rng = random.Random(20261128)
    return [{"user_id": i, "name": f"{FIRST[i % len(FIRST)]} {i}", "city": rng.choice(CITIES),
             "age": rng.randint(18, 80), "active": rng.random() < 0.7}
            for i in range(1, count + 1)]


def customers(count: int = 40) -> list[dict[str, Any]]:
    """Return the sample customers: id, name, country."""
    rng = random.Random(7)
    return [{"id": i, "name": f"Customer {i}", "country": rng.choice(COUNTRIES)}
            for i in range(1, count + 1)]


def orders(count: int = 500) -> list[dict[str, Any]]:
    """Return the sample orders: id, customer_id, amount (cents), status, created_at."""
    rng = random.Random(11)
    start = date(2026, 1, 1)
    return [{"id": i, "customer_id": rng.randint(1, 40), "amount_cents": rng.randint(100, 50000),
             "status": rng.choice(ORDER_STATUSES),
             "created_at": start + timedelta(days=rng.randint(0, 300))}
            for i in range(1, count + 1)]


def mysql_script() -> str:
    """Return the SQL that creates and fills the sample tables (idempotent)."""
    return "\n".join(["USE taskmill_sample;", *mysql_statements()]) + "\n"


def mysql_statements() -> list[str]:
    """Return the statements that create and fill the sample tables, in order."""
    lines = [
        "CREATE TABLE IF NOT EXISTS customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
        " country CHAR(2) NOT NULL);",
        "CREATE TABLE IF NOT EXISTS orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
        " amount DECIMAL(10,2) NOT NULL, status VARCHAR(16) NOT NULL, created_at DATE NOT NULL,"
        " INDEX (customer_id), INDEX (created_at));",
    ]
    lines += [f"INSERT IGNORE INTO customers VALUES ({c['id']}, '{c['name']}', '{c['country']}');"
              for c in customers()]
    lines += [f"INSERT IGNORE INTO orders VALUES ({o['id']}, {o['customer_id']}, "
              f"{o['amount_cents'] / 100:.2f}, '{o['status']}', '{o['created_at'].isoformat()}');"
              for o in orders()]
    return lines


def fill_users(database: Any) -> None:
    """Replace the `users` collection of a pymongo Database with the generated users."""
    collection = database["users"]
    collection.delete_many({})
    # user_id is the key: unique as the _id (every engine indexes it), and indexed again
    # for the search's sort.
    collection.insert_many([{"_id": user["user_id"], **user} for user in users()])
    collection.create_index("user_id")


def load_source(name: str) -> None:
    """Fill the configured data source `name` (mongo or mysql), opened as the workers do."""
    from taskmill.config import load_config
    from taskmill.worker.sources import Sources

    sources = Sources(load_config().sources)
    try:
        source = sources.get(name)
        if name == "mongo":
            fill_users(source)
            return
        with source.cursor() as cursor:
            for statement in mysql_statements():
                cursor.execute(statement)
    finally:
        sources.close()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else ""
    if target == "mysql":
        sys.stdout.write(mysql_script())
    elif target == "source" and len(sys.argv) == 3:
        load_source(sys.argv[2])
    else:
        sys.exit("usage: sample_data.py mysql | source mongo|mysql")
