"""`/api/v1/experiments`: create, read (with results), start, pause, change weights, declare a winner."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import error, results_of
from core.serializers import StrictSerializer, choice
from core.vocabulary import Channel
from experiments import lifecycle, results
from experiments.models import Experiment


class ArmRequest(StrictSerializer):
    key = serializers.RegexField(r"\A[-a-zA-Z0-9_]{1,50}\Z", required=False)
    version = serializers.IntegerField(min_value=1, allow_null=True, required=False, default=None)
    weight = serializers.FloatField(min_value=0.01, max_value=100)


class ExperimentRequest(StrictSerializer):
    name = serializers.CharField(max_length=200)
    template = serializers.SlugField(max_length=100)
    channel = choice(Channel.choices, "channel")
    metric = choice(Experiment.Metric.choices, "metric", required=False, default=Experiment.Metric.CLICKED)
    arms = ArmRequest(many=True)
    mode = choice(Experiment.Mode.choices, "mode", required=False, default=Experiment.Mode.FIXED)
    confidence = serializers.FloatField(min_value=0.8, max_value=0.999, required=False, default=0.95)
    min_sample = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False, default=1000)
    auto_promote = serializers.BooleanField(required=False, default=False)
    bandit_floor = serializers.FloatField(min_value=0, max_value=0.5, required=False, default=0.05)
    bandit_interval_seconds = serializers.IntegerField(min_value=60, max_value=7 * 86400, required=False, default=3600)

    def validate_arms(self, value):
        if not 2 <= len(value) <= 10:
            raise serializers.ValidationError("An experiment has 2 to 10 arms.")
        return value


class WeightsRequest(StrictSerializer):
    arms = ArmRequest(many=True)


class WinnerRequest(StrictSerializer):
    arm = serializers.CharField(max_length=50)


class ExperimentView(serializers.ModelSerializer):
    template = serializers.CharField(source="template.name")

    class Meta:
        model = Experiment
        fields = ["id", "name", "template", "channel", "status", "metric", "arms", "mode", "confidence", "min_sample",
                  "auto_promote", "bandit_floor", "bandit_interval_seconds", "winner", "created_at", "started_at", "ended_at"]


ResultsView = inline_serializer("ExperimentResults", {
    "arms": serializers.ListField(child=serializers.DictField()),
    "comparisons": serializers.ListField(child=serializers.DictField()),
    "chi_square": serializers.DictField(), "sample_ratio": serializers.DictField(),
    "winner": serializers.CharField(allow_null=True),
    "as_of": serializers.DateTimeField(allow_null=True, help_text=(
        "null: computed now; else when the snapshot shown was taken (counting now would take too long).")),
})


def detail(experiment: Experiment) -> dict:
    last = experiment.snapshots.order_by("-taken_at").first()
    previous = {c["arm"]: c["always_valid_p"] for c in (last.results["comparisons"] if last else [])}
    return {**ExperimentView(experiment).data,
            "results": results.compute_within(experiment, previous, settings.HERALD_REQUEST_WORK_BUDGET_SECONDS)}


class ExperimentList(APIView):
    required_scopes = {"GET": "templates:read", "POST": "templates:write"}

    @extend_schema(responses=results_of("ExperimentList", ExperimentView))
    def get(self, request):
        """Every experiment, newest first."""
        return Response({"results": ExperimentView(Experiment.objects.select_related("template"), many=True).data})

    @extend_schema(request=ExperimentRequest, responses={201: ExperimentView})
    def post(self, request):
        """Create an experiment (a draft) on a template and channel: its arms are published versions,
        or a holdout sent nothing; the first arm is the control."""
        serializer = ExperimentRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = lifecycle.create(serializer.validated_data)
        return Response(ExperimentView(experiment).data, status=http.HTTP_201_CREATED)


class ExperimentDetail(APIView):
    required_scopes = {"GET": "templates:read", "PATCH": "templates:write"}

    @extend_schema(operation_id="v1_experiments_retrieve",
                   responses=inline_serializer("ExperimentDetail", {"results": ResultsView}))
    def get(self, request, experiment_id):
        """The experiment and its results now (counted from deliveries and events)."""
        return Response(detail(get_object_or_404(Experiment.objects.select_related("template"), pk=experiment_id)))

    @extend_schema(request=WeightsRequest, responses={200: ExperimentView, 409: error("The experiment is completed.")})
    def patch(self, request, experiment_id):
        """Change the arms' weights; people already assigned keep their arm."""
        serializer = WeightsRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = get_object_or_404(Experiment.objects.select_related("template"), pk=experiment_id)
        return Response(ExperimentView(lifecycle.change_weights(experiment, serializer.validated_data["arms"])).data)


class ExperimentAction(APIView):
    required_scopes = {"POST": "templates:write"}
    action = ""

    @extend_schema(request=None, responses={200: ExperimentView, 409: error("Not possible in the experiment's state.")})
    def post(self, request, experiment_id):
        experiment = get_object_or_404(Experiment.objects.select_related("template"), pk=experiment_id)
        changed = lifecycle.start(experiment) if self.action == "start" else lifecycle.pause(experiment)
        return Response(ExperimentView(changed).data)


class ExperimentStart(ExperimentAction):
    """Start (or resume) the experiment: new sends on its template and channel are assigned arms."""

    action = "start"


class ExperimentPause(ExperimentAction):
    """Pause: new sends get the template's current version; assignments are kept for a restart."""

    action = "pause"


class ExperimentWinner(APIView):
    required_scopes = {"POST": "templates:write"}

    @extend_schema(request=WinnerRequest, responses={200: ExperimentView})
    def post(self, request, experiment_id):
        """Declare the winner: its version is published (new sends render it) and the experiment completes."""
        serializer = WinnerRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = get_object_or_404(Experiment.objects.select_related("template"), pk=experiment_id)
        lifecycle.declare_winner(experiment, serializer.validated_data["arm"], actor=f"api key {getattr(request.auth, 'name', '')}"[:150])
        return Response(ExperimentView(experiment).data)
