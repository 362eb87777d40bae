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
    params = [[field.get_db_prep_save(field.pre_save(row, True), connection) for row in rows] for field in fields]
    return columns, select, params


def insert(model: type[models.Model], rows: list) -> None:
    """`bulk_create` in one statement, whatever the number of rows."""
    if not rows:
        return
    columns, select, params = unnest(model, rows)
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{model._meta.db_table}" ({columns}) {select}', params)
