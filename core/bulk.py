"""Many rows in one statement with one parameter per column: arrays that PostgreSQL unnests.

A multi-row VALUES list takes a placeholder per value, and converting such a query cost psycopg
more than PostgreSQL took to run it (profiled on a campaign: 1.5 s of 11 s in query conversion).
"""

from django.db import connection, models


def unnest(model: type[models.Model], rows: list, fields: list[models.Field] | None = None) -> tuple[str, str, list]:
    """(column list, `SELECT * FROM unnest(...)` of the rows' values, its parameters) for `rows` of `model`."""
    fields = fields or model._meta.concrete_fields
    columns = ", ".join(f'"{field.column}"' for field in fields)
    select = "SELECT * FROM unnest(" + ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in fields) + ")"
    return columns, select, [column(field, rows) for field in fields]


def column(field: models.Field, rows: list) -> list:
    """One field's values for the rows, as psycopg takes them.

    Only the fields that need Django's preparation get it (JSON is wrapped, auto_now stamped):
    for the rest it was a third of the cost of a campaign chunk's insert (profiled).
    """
    if isinstance(field, models.JSONField) or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return [field.get_db_prep_save(field.pre_save(row, True), connection) for row in rows]
    return [getattr(row, field.attname) for row in rows]


def insert(model: type[models.Model], rows: list) -> None:
    """`bulk_create` in one statement, whatever the number of rows."""
    if not rows:
        return
    columns, select, params = unnest(model, rows)
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{model._meta.db_table}" ({columns}) {select}', params)
