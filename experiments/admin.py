"""Experiments for ops staff: the results table, a chart over time and "declare winner"."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import escape, format_html

from core.admin import AuditAdmin, DateRangeFilter, ExactSearch, HistoryInline, change_url, short_id
from core.errors import ApiError
from experiments import lifecycle, results
from experiments.models import Decision, Experiment, Exposure
from preferences.models import Recipient

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = ["name", "template", "channel", "metric", "arms", "mode", "confidence", "min_sample", "auto_promote",
                  "bandit_floor", "bandit_interval_seconds"]
        help_texts = {"arms": '[{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 50}]; '
                              'a holdout is {"key": "holdout", "version": null, "weight": 10}. The first arm is the control.'}

    def clean(self):
        cleaned = super().clean()
        template, channel, arms = cleaned.get("template"), cleaned.get("channel"), cleaned.get("arms")
        if template and channel and isinstance(arms, list):
            try:
                cleaned["arms"] = lifecycle.checked_arms(template, channel, arms)
                lifecycle.refuse_holdout_if_required(Experiment(template=template, arms=cleaned["arms"]))
            except ApiError as exc:
                self.add_error("arms", f"{exc.detail} ({exc.field})")
        return cleaned


class DecisionInline(HistoryInline):
    model = Decision
    fields = ["at", "kind", "actor", "detail"]


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    list_display = ["name", "template", "channel", "status", "metric", "winner", "results_link", "created_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["template"]
    inlines = [DecisionInline]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "winner", "started_at", "ended_at", "weights_updated_at"]
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            # Once people are assigned, what they were assigned to must not change under the results.
            fixed += ["template", "channel", "metric", "arms"]
        return fixed

    @admin.display(description="results")
    def results_link(self, experiment):
        return format_html('<a href="{}">results</a>', f"{experiment.pk}/results/")

    def get_urls(self):
        return [
            path("<int:pk>/results/", self.admin_site.admin_view(self.results_view), name="experiments_experiment_results"),
            path("<int:pk>/act/", self.admin_site.admin_view(self.act), name="experiments_experiment_act"),
        ] + super().get_urls()

    def results_view(self, request, pk):
        experiment = get_object_or_404(Experiment.objects.select_related("template"), pk=pk)
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        snapshots = list(experiment.snapshots.order_by("taken_at"))
        previous = {c["arm"]: c["always_valid_p"] for c in (snapshots[-1].results["comparisons"] if snapshots else [])}
        try:
            now = results.compute_within(experiment, previous, settings.HERALD_REQUEST_WORK_BUDGET_SECONDS)
        except ApiError as exc:
            messages.error(request, str(exc.detail))
            return redirect("admin:experiments_experiment_changelist")
        comparisons = {c["arm"]: c for c in now["comparisons"]}
        rows = [{**arm, "comparison": comparisons.get(arm["key"]), "colour": COLOURS[i % len(COLOURS)]}
                for i, arm in enumerate(now["arms"])]
        context = {**self.admin_site.each_context(request), "title": f"Results: {experiment}", "experiment": experiment,
                   "results": now, "rows": rows, "chart": chart(experiment, snapshots), "opts": self.model._meta,
                   "decisions": experiment.decisions.all()[:20]}
        return TemplateResponse(request, "admin/experiments/results.html", context)

    def act(self, request, pk):
        experiment = get_object_or_404(Experiment.objects.select_related("template"), pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, experiment):
            raise PermissionDenied
        action = request.POST.get("action")
        try:
            if action == "start":
                lifecycle.start(experiment)
            elif action == "pause":
                lifecycle.pause(experiment)
            elif action == "snapshot":
                results.take_snapshot(experiment)
            elif action == "winner":
                lifecycle.declare_winner(experiment, request.POST.get("arm", ""), actor=request.user.get_username())
            else:
                raise ApiError(400, "invalid", f"Unknown action {action!r}.")
            self.log_change(request, experiment, f"{action}" + (f" {request.POST.get('arm')}" if action == "winner" else ""))
            messages.success(request, f"{experiment.name}: {action} done.")
        except ApiError as exc:
            messages.error(request, f"{experiment.name}: {exc.detail}")
        return redirect("admin:experiments_experiment_results", pk)


@admin.register(Exposure)
class ExposureAdmin(ExactSearch, AuditAdmin):
    """Who was sent which arm: one row per notification routed under an experiment (holdouts too)."""

    list_display = ["experiment", "arm", "user_id", "notification_short_id", "exposed_at", "converted_at"]
    list_filter = ["experiment", ("exposed_at", DateRangeFilter)]
    list_select_related = ["experiment__template"]
    ordering = ["-id"]
    sortable_by = []
    exact_search = ("notification_id",)
    search_help_text = "A notification id, exactly."
    fields = ["experiment", "arm", "user_id", "notification_short_id", "exposed_at", "converted_at"]
    readonly_fields = ["user_id", "notification_short_id"]

    def get_queryset(self, request):
        # The person is a plain id here (experiments may not point at people's rows); their user id in the same query.
        user_ids = Recipient.objects.filter(pk=OuterRef("recipient_id")).values("external_id")[:1]
        return super().get_queryset(request).annotate(user_external_id=Subquery(user_ids))

    @admin.display(description="user id")
    def user_id(self, exposure):
        if exposure.user_external_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', change_url(Recipient, exposure.recipient_id), exposure.user_external_id)

    @admin.display(description="notification")
    def notification_short_id(self, exposure):
        return short_id(exposure.notification_id, change_url("notifications.notification", exposure.notification_id))


def chart(experiment: Experiment, snapshots: list) -> str:
    """An SVG line per arm: its rate at each snapshot (server-rendered; no front-end build)."""
    width, height, pad = 640, 240, 36
    points = [(s.taken_at, {a["key"]: a["rate"] for a in s.results["arms"]}) for s in snapshots]
    rates = [rate for _, by_arm in points for rate in by_arm.values() if rate is not None]
    if len(points) < 2 or not rates:
        return ""
    top = max(rates) * 1.1 or 1
    start, end = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (end - start) or 1

    def xy(at, rate):
        return pad + (at.timestamp() - start) / span * (width - 2 * pad), height - pad - rate / top * (height - 2 * pad)

    lines = []
    for i, arm in enumerate(experiment.arms):
        coords = [xy(at, by_arm[arm["key"]]) for at, by_arm in points if by_arm.get(arm["key"]) is not None]
        if coords:
            path_points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            lines.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2" points="{path_points}">'
                         f'<title>{escape(arm["key"])}</title></polyline>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
            f'<text x="2" y="{pad}" font-size="11">{top:.1%}</text><text x="2" y="{height - pad}" font-size="11">0%</text>'
            f'<text x="{pad}" y="{height - 8}" font-size="11">{points[0][0]:%Y-%m-%d %H:%M}</text>'
            f'<text x="{width - pad - 100}" y="{height - 8}" font-size="11">{points[-1][0]:%Y-%m-%d %H:%M}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{experiment.metric} rate per arm over time">{axis}{"".join(lines)}</svg>')
