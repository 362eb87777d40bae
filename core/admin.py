"""Admin pieces shared by the apps: audit records nobody edits, short ids, tables, date ranges, cheap lists."""

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path, quote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import OperationalError, models
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from core.queries import statement_timeout

# The one admin site, named for what it is (set here: admin autodiscovery imports every app's admin module).
admin.site.site_header = "Herald"
admin.site.site_title = "Herald admin"
admin.site.index_title = "Operations"
admin.site.site_url = None  # Herald has no public site to "view"
admin.site.empty_value_display = "—"
admin.site.enable_nav_sidebar = False  # the index has the same links; the lists need the width

# How long a list may spend counting its rows before it takes PostgreSQL's estimate instead.
COUNT_SECONDS = 0.3


class HistoryInline(admin.TabularInline):
    """A record shown under its parent, never edited there (versions, audit rows)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BoundedCountPaginator(Paginator):
    """Counts a list within COUNT_SECONDS, else takes PostgreSQL's estimate: COUNT(*) reads every row it counts."""

    estimated = False

    @cached_property
    def count(self) -> int:
        try:
            with statement_timeout(COUNT_SECONDS):
                return self.object_list.count()
        except OperationalError:  # QueryCanceled: the count overran
            self.estimated = True
            plan = json.loads(self.object_list.explain(format="json"))
            return int(plan[0]["Plan"]["Plan Rows"])


class ExactSearch:
    """A search an index answers: a term finds the rows where it equals one of `exact_search`'s fields
    (an id field only when the term is such an id), never a scan for a substring of every row."""

    exact_search: tuple[str, ...] = ()

    def get_search_fields(self, request):
        return self.exact_search

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = []
        for path in self.exact_search:
            try:
                value = get_fields_from_path(self.model, path)[-1].to_python(term)
            except ValidationError:
                continue
            matches.append(self.model._default_manager.filter(**{path: value}).order_by().values("pk"))
        if not matches:
            return queryset.none(), False
        return queryset.filter(pk__in=matches[0].union(*matches[1:]) if len(matches) > 1 else matches[0]), False


class DateRangeFilter(admin.DateFieldListFilter):
    """Django's presets (today, past 7 days…) and a from–to range typed in: whole days in the site's
    timezone, both included."""

    template = "admin/herald/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.lookup_kwarg_from = f"{field_path}__from"
        self.lookup_kwarg_to = f"{field_path}__to"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.typed = {key: (self.used_parameters.pop(key, None) or [""])[-1]
                      for key in (self.lookup_kwarg_from, self.lookup_kwarg_to)}
        self.other_params: list[tuple[str, str]] = []

    def expected_parameters(self):
        return [*super().expected_parameters(), self.lookup_kwarg_from, self.lookup_kwarg_to]

    @property
    def typed_from(self) -> str:
        return self.typed[self.lookup_kwarg_from]

    @property
    def typed_to(self) -> str:
        return self.typed[self.lookup_kwarg_to]

    def queryset(self, request, queryset):
        queryset = super().queryset(request, queryset)
        try:
            start, end = (date.fromisoformat(value) if value else None for value in (self.typed_from, self.typed_to))
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        if start:
            queryset = queryset.filter(**{f"{self.field_path}__gte": self.boundary(start)})
        if end:
            queryset = queryset.filter(**{f"{self.field_path}__lt": self.boundary(end + timedelta(days=1))})
        return queryset

    def boundary(self, day: date):
        if isinstance(self.field, models.DateTimeField):
            return timezone.make_aware(datetime.combine(day, time.min))
        return day

    def choices(self, changelist):
        # The range form keeps the list's other filters, search and ordering.
        self.other_params = [(k, v) for k, v in changelist.params.items() if not k.startswith(self.field_generic)]
        yield from super().choices(changelist)


def values_filter(field_name: str, values) -> type[admin.SimpleListFilter]:
    """A filter over a known list of values: Django's default for a plain field reads the whole table to list them."""

    class ValuesFilter(admin.SimpleListFilter):
        title = field_name.replace("_", " ")
        parameter_name = field_name

        def lookups(self, request, model_admin):
            return [(value, value) for value in values]

        def queryset(self, request, queryset):
            return queryset.filter(**{field_name: self.value()}) if self.value() else queryset

    return ValuesFilter


@dataclass
class Button:
    """A button on a record's page that POSTs one action (its view checks its own permission)."""

    label: str
    url: str
    id: str
    help: str = ""


class RecordPage:
    """A record's admin page with tables under its fields (`sections`) and buttons above them (`buttons`),
    each button POSTing one action whose view checks that action's own permission."""

    change_form_template = "admin/herald/change_form.html"

    class Media:
        css = {"all": ["herald/admin.css"]}

    def sections(self, request, obj) -> list[tuple[str, str]]:
        """Tables shown under the record's fields, as (title, html)."""
        return []

    def buttons(self, request, obj) -> list[Button]:
        """The actions this user may take on the record from its page."""
        return []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(herald_sections=self.sections(request, obj), herald_buttons=self.buttons(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def object_to_act_on(self, request, pk, allowed: bool):
        """The record a button's POST acts on, if this user holds the action's permission (else 403)."""
        if request.method != "POST" or not allowed:
            raise PermissionDenied
        obj = self.get_object(request, pk)
        if obj is None:
            raise PermissionDenied
        return obj


class AuditAdmin(RecordPage, admin.ModelAdmin):
    """A record of what happened: viewed by staff allowed to, changed by nobody in admin, superusers included.

    What ops may do to one (requeue a dead letter) is a button and a list action with a permission of
    its own, logged as a change (who, when) in the record's history. Lists stay cheap on big tables:
    no full count, a bounded one, exact search.
    """

    change_list_template = "admin/herald/change_list.html"
    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: one more COUNT of the table each
    list_per_page = 50

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _admin_name(model: type[models.Model] | str) -> str:
    # A model of a higher app is named by its label ("notifications.notification"), not imported.
    label = model if isinstance(model, str) else model._meta.label_lower
    return "admin:" + label.replace(".", "_")


def change_url(model: type[models.Model] | str, pk) -> str:
    return reverse(f"{_admin_name(model)}_change", args=[quote(pk)])


def changelist_url(model: type[models.Model] | str, **filters) -> str:
    url = reverse(f"{_admin_name(model)}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def short_id(value, url: str | None = None) -> str:
    """An id's first 8 characters (the whole id on hover), linked when given a URL."""
    if value in (None, ""):
        return "—"
    full = str(value)
    if url:
        return format_html('<a class="short-id" href="{}" title="{}">{}</a>', url, full, full[:8])
    return format_html('<span class="short-id" title="{}">{}</span>', full, full[:8])


def moment(value) -> str:
    """A time as admin shows times (to the second, in the site's timezone); ISO strings (status histories) too."""
    if isinstance(value, str):
        value = parse_datetime(value) or value
    if isinstance(value, datetime):
        return formats.date_format(timezone.localtime(value) if timezone.is_aware(value) else value, "DATETIME_FORMAT")
    return str(value)


def cell(value):
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {item}" for key, item in value.items())
    return value


def table(headers: list[str], rows: list[list], empty: str = "None.") -> str:
    """An HTML table of `rows`; plain cells are escaped, cells made with format_html kept."""
    if not rows:
        return format_html('<p class="help">{}</p>', empty)
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join("", "<tr>{}</tr>",
                            ((format_html_join("", "<td>{}</td>", ((cell(value),) for value in row)),) for row in rows))
    return format_html('<table class="herald-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def history_table(history: list[dict]) -> str:
    """A status history ([{status, at, reason, …}]) as a table, oldest first."""
    rows = [[entry.get("status"), moment(entry.get("at", "")), entry.get("reason"),
             {key: value for key, value in entry.items() if key not in ("status", "at", "reason")}]
            for entry in history or []]
    return table(["status", "at", "reason", "detail"], rows, "No history.")


def reasons_table(skipped: list[dict]) -> str:
    """Channels skipped or held, each with its reason ([{channel, reason, until…}])."""
    rows = [[entry.get("channel"), entry.get("reason"),
             {key: moment(value) if key == "until" else value for key, value in entry.items() if key not in ("channel", "reason")}]
            for entry in skipped or []]
    return table(["channel", "reason", "detail"], rows, "No channel was skipped.")
