"""The person's data across apps: each app registers how to export and erase what it holds.

preferences owns erasure and export (GDPR requests arrive there) but sits below the apps that
store messages; they register here when Django starts, so preferences never imports them and a
new app with personal data says so in one place, its own AppConfig.ready().
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PersonalData:
    app: str
    # The export's top-level key and what goes under it, or None when another app's section carries it.
    section: str | None
    export: Callable | None
    # Blanks or deletes what the app holds about the recipient; runs inside erasure's transaction.
    erase: Callable


_registered: dict[str, PersonalData] = {}


def register(app: str, *, erase: Callable, section: str | None = None, export: Callable | None = None) -> None:
    _registered[app] = PersonalData(app, section, export, erase)


def export_sections(recipient) -> dict:
    return {data.section: data.export(recipient) for data in _registered.values() if data.section}


def erase_everywhere(recipient) -> None:
    for data in _registered.values():
        data.erase(recipient)
