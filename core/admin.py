"""Admin pieces shared by the apps."""

from django.contrib import admin


class HistoryInline(admin.TabularInline):
    """A record shown under its parent, never edited there (versions, audit rows)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False
