"""The admin lists' count: exact when it is quick, PostgreSQL's estimate when counting would take too long."""

import pytest
from django.contrib.auth.models import User
from django.db import connection

from core.admin import BoundedCountPaginator

pytestmark = pytest.mark.django_db


def statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def test_a_quick_count_is_exact_and_leaves_the_connections_time_limit_as_it_was():
    before = statement_timeout()
    for name in ("ada", "bob", "cy"):
        User.objects.create_user(name)

    paginator = BoundedCountPaginator(User.objects.order_by("pk"), 2)

    assert (paginator.count, paginator.estimated, paginator.num_pages) == (3, False, 2)
    assert statement_timeout() == before


def test_a_count_that_overruns_its_time_is_the_planners_estimate():
    before = statement_timeout()
    User.objects.create_user("ada")
    # A count that takes half a second, whatever the table holds: longer than a list may spend counting.
    slow = User.objects.extra(where=["(SELECT true FROM pg_sleep(0.5))"]).order_by("pk")

    paginator = BoundedCountPaginator(slow, 50)

    assert paginator.count >= 0 and paginator.estimated
    assert statement_timeout() == before
    assert list(paginator.page(1).object_list) == list(User.objects.all())
