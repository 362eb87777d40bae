"""Category settings and people's choices, read through the cache so routing needs no SQL.

Readers fill the cache with `add` (never overwrite) and writers `set` the fresh value after
commit, so a reader holding an older row cannot replace a newer one. Entries also expire, which
bounds staleness after changes made outside these functions (a shell `update()`, say).
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import transaction

from preferences.defaults import DEFAULT_POLICIES
from preferences.models import CategorySetting, Preferences, Recipient
from preferences.snapshot import CategoryPolicy, Choices

log = logging.getLogger(__name__)

CACHE_SECONDS = 600
CATEGORIES_KEY = "preferences:categories:v2"
_read_ahead = threading.local()  # see read_ahead


def choices_key(recipient_id: int) -> str:
    return f"preferences:choices:v1:{recipient_id}"


class StaleVersion(Exception):
    def __init__(self, current: int):
        super().__init__(f"current version is {current}")
        self.current = current


def category_policies() -> dict[str, CategoryPolicy]:
    """Every category's settings, from the cache when possible."""
    if getattr(_read_ahead, "policies", None) is not None:
        return _read_ahead.policies
    policies = cache.get(CATEGORIES_KEY)
    if policies is None:
        policies = _load_policies()
    return policies


def policy_for(category: str, policies: dict[str, CategoryPolicy]) -> CategoryPolicy:
    policy = policies.get(category)
    if policy is None:
        log.warning("no policy for unknown category %r; applying no defaults or limits", category)
        policy = CategoryPolicy(category)
    return policy


@contextmanager
def read_ahead(recipient_ids=()) -> Iterator[None]:
    """Within the block, the category settings and these people's choices come from one cache
    round trip and at most one query.

    Routing a chunk of a campaign would otherwise read each person's choices on their own. What
    the database gave goes into the cache with `add`, as a single person's reader would.
    """
    recipient_ids = set(recipient_ids)
    found = cache.get_many([CATEGORIES_KEY, *[choices_key(pk) for pk in recipient_ids]])
    known = {pk: found[choices_key(pk)] for pk in recipient_ids if choices_key(pk) in found}
    missing = recipient_ids - set(known)
    if missing:
        rows = {row.recipient_id: row for row in Preferences.objects.filter(recipient_id__in=missing)}
        loaded = {pk: Choices.from_row(rows[pk]) if pk in rows else Choices() for pk in missing}
        for pk, choices in loaded.items():
            cache.add(choices_key(pk), choices, CACHE_SECONDS)  # as a single reader would: never overwriting
        known.update(loaded)
    _read_ahead.choices = known
    _read_ahead.policies = found.get(CATEGORIES_KEY) or _load_policies()
    try:
        yield
    finally:
        _read_ahead.choices, _read_ahead.policies = {}, None


def category_policy(category: str) -> CategoryPolicy:
    """One category's settings, from the cache when possible."""
    return policy_for(category, category_policies())


def is_required(category: str) -> bool:
    return category_policy(category).required


def allows_holdout(category: str) -> bool:
    """Whether an experiment may send a person nothing of `category`: only where they could have
    unsubscribed from it themselves (its messages carry an unsubscribe link, as marketing and
    social do), never for security, transaction or reminder messages people count on."""
    policy = category_policy(category)
    return policy.list_unsubscribe and not policy.required


def load(recipient_id: int, category: str) -> tuple[Choices, CategoryPolicy]:
    """The person's choices and the category's policy, in one cache round trip when both are cached."""
    if recipient_id in getattr(_read_ahead, "choices", {}):
        return _read_ahead.choices[recipient_id], policy_for(category, _read_ahead.policies)
    key = choices_key(recipient_id)
    found = cache.get_many([key, CATEGORIES_KEY])
    choices = found.get(key)
    if choices is None:
        choices = _load_choices(recipient_id)
    policies = found.get(CATEGORIES_KEY)
    if policies is None:
        policies = _load_policies()
    return choices, policy_for(category, policies)


def choices_for(recipient_id: int) -> Choices:
    """The person's choices (defaults if they never chose anything), from the cache when possible."""
    if recipient_id in getattr(_read_ahead, "choices", {}):
        return _read_ahead.choices[recipient_id]
    choices = cache.get(choices_key(recipient_id))
    if choices is None:
        choices = _load_choices(recipient_id)
    return choices


def _load_choices(recipient_id: int) -> Choices:
    row = Preferences.objects.filter(recipient_id=recipient_id).first()
    choices = Choices.from_row(row) if row else Choices()
    cache.add(choices_key(recipient_id), choices, CACHE_SECONDS)
    return choices


def _load_policies() -> dict[str, CategoryPolicy]:
    policies = {**DEFAULT_POLICIES, **{s.category: CategoryPolicy.from_setting(s) for s in CategorySetting.objects.all()}}
    cache.add(CATEGORIES_KEY, policies, CACHE_SECONDS)
    return policies


def forget_category_policies() -> None:
    """Drop the cached category settings; the next reader loads them again."""
    cache.delete(CATEGORIES_KEY)


def forget_choices(recipient_id: int) -> None:
    """Drop a person's cached choices once the current transaction commits."""
    transaction.on_commit(lambda: cache.delete(choices_key(recipient_id)))


def update_choices(
    recipient: Recipient, expected_version: int | None, change: Callable[[Preferences], bool]
) -> Preferences:
    """Apply `change` to the person's stored choices if they are still at `expected_version`.

    `change` edits the row in place and returns whether anything changed; only then is the
    version bumped. The row lock makes a concurrent editor wait and then fail with StaleVersion
    rather than overwrite. `expected_version=None` skips the check (If-Match: *, unsubscribe).
    """
    with transaction.atomic():
        Preferences.objects.get_or_create(recipient=recipient)
        row = Preferences.objects.select_for_update().get(recipient=recipient)
        if expected_version is not None and row.version != expected_version:
            raise StaleVersion(row.version)
        if change(row):
            row.version += 1
            row.save()
            fresh = Choices.from_row(row)
            # Deleted now so this transaction's own reads miss the cache; set after commit so a
            # reader that loaded the old row meanwhile cannot leave it behind (it only `add`s).
            cache.delete(choices_key(recipient.pk))
            transaction.on_commit(lambda: cache.set(choices_key(recipient.pk), fresh, CACHE_SECONDS))
    return row
