"""The built-in category defaults."""

import importlib

from core.vocabulary import NotificationType
from preferences.defaults import DEFAULT_POLICIES
from preferences.snapshot import CategoryPolicy


def test_the_seed_migration_and_the_built_in_defaults_agree():
    seed = importlib.import_module("preferences.migrations.0003_seed_category_settings").SEED

    seeded = {name: CategoryPolicy(name, **{**fields, "channels": tuple(fields["channels"])}) for name, fields in seed.items()}

    assert seeded == DEFAULT_POLICIES
    assert set(seeded) == set(NotificationType.values)
