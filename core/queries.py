"""Reads whose cost grows with the data they cover, held to a time limit."""

from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def statement_timeout(seconds: float):
    """Every statement inside gives up after `seconds` (django.db.OperationalError, QueryCanceled)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            previous = cursor.fetchone()[0]
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{max(1, int(seconds * 1000))}ms"])
        yield
        # Inside an outer transaction this block is a savepoint, and the limit would outlive it.
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
