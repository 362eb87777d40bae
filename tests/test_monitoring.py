"""The monitoring that ships (deploy/prometheus/, deploy/grafana/): rules and scrape configuration pass
promtool, the alerts fire on the series they are written for, and every query names a metric Herald exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core import metrics

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool is not installed (make test installs Debian's prometheus)")
# Computed per scrape from the installation's snapshot (config/gauges.py) or by prometheus-client itself.
GAUGES = {"herald_lane_depth", "herald_lane_oldest_due_age_seconds", "herald_dead_letters", "herald_breaker_state",
          "herald_installation_gauges_age_seconds", "process_start_time_seconds"}


def exported() -> set[str]:
    names = set(GAUGES)
    for value in vars(metrics).values():
        describe = getattr(value, "describe", None)
        if describe is not None and getattr(value, "_name", "").startswith("herald_"):
            for family in describe():
                names |= {family.name, family.name + "_total", family.name + "_bucket", family.name + "_count", family.name + "_sum"}
    return names


def queried(expression: str) -> set[str]:
    return set(re.findall(r"\b((?:herald|process)_[a-z_]+)\b", expression))


@needs_promtool
def test_the_alert_rules_pass_promtool_and_fire_on_their_symptoms():
    checked = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs_promtool
def test_the_scrape_configuration_passes_promtool(tmp_path):
    (tmp_path / "token").write_text("secret")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/herald_metrics_token", str(tmp_path / "token")))
    checked = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_and_dashboard_query_names_a_metric_herald_exports():
    names = exported()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "herald.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for expression in expressions:
        assert queried(expression) and queried(expression) <= names, expression


def test_the_monitoring_profile_runs_prometheus_and_grafana_with_the_shipped_files():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"] == services["grafana"]["profiles"]
    mounted = [volume.split(":")[0] for volume in services["prometheus"]["volumes"]]
    assert "./deploy/prometheus/prometheus.yml" in mounted and "./deploy/prometheus/alerts.yml" in mounted
    assert "./deploy/grafana/dashboards" in [volume.split(":")[0] for volume in services["grafana"]["volumes"]]
    for worker in ("worker-urgent", "worker-bulk", "beat"):
        assert services[worker]["environment"]["HERALD_METRICS_PORT"] == "9100"
        assert "ports" not in services[worker]
