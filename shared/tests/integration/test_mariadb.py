import importlib.util
from pathlib import Path

import pymysql
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def sample_data():
    spec = importlib.util.spec_from_file_location("sample_data", ROOT / "scripts" / "sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mariadb_answers_on_the_sample_data(mysql_settings):
    """The mysql source holds the generated sample orders and answers an aggregate."""
    orders = sample_data().orders()
    with pymysql.connect(**mysql_settings) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), SUM(amount) FROM orders WHERE status = %s", ("paid",))
        count, total = cursor.fetchone()
    paid = [o for o in orders if o["status"] == "paid"]
    assert count == len(paid)
    assert round(float(total), 2) == round(sum(o["amount_cents"] for o in paid) / 100, 2)
