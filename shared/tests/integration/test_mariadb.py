import pymysql
import pytest

from tests.helpers import sample_data

pytestmark = pytest.mark.integration


def test_mariadb_answers_on_the_sample_data(mysql_settings):
    """The mysql source holds the generated sample orders and answers an aggregate."""
    orders = sample_data().orders()
    with pymysql.connect(**mysql_settings) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), SUM(amount) FROM orders WHERE status = %s", ("paid",))
        count, total = cursor.fetchone()
    paid = [o for o in orders if o["status"] == "paid"]
    assert count == len(paid)
    assert round(float(total), 2) == round(sum(o["amount_cents"] for o in paid) / 100, 2)
