"""The image and docker-compose.yml, read as Docker would read them (no Docker daemon here).

Every app Django loads is in the image, every service's command names something that exists,
every variable compose sets is one Herald reads, every healthcheck asks for a URL Herald serves
(or a liveness file the service's own process keeps), and local data stays out of the image.
"""

import ast
import fnmatch
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: service for name, service in SERVICES.items() if service.get("image") == "herald:latest"}
# Modules whose environment reads are Herald's configuration: the settings, what they import
# for queue names, and the entry points' own options.
CONFIG_READERS = ["config/settings.py", "core/queues.py", "config/gunicorn.py", "config/socket_server.py", "core/tracing.py"]


# --- the image -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; `!` re-includes; a match on a folder covers what is in it."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.compile(
            "^" + re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"
        )
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not negated
    return verdict


def files_in_image() -> set[str]:
    """The repository's files (as build context) that the Dockerfile's COPY lines put in the image."""
    sources: list[str] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction in ("COPY", "ADD") and "--from" not in arguments:
            *copied, _destination = shlex.split(arguments)
            sources += [s for s in copied if not s.startswith("--")]
    patterns = dockerignore_patterns()
    context = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".git/" not in p.as_posix()]
    included = set()
    for relative in context:
        if ignored(relative, patterns):
            continue
        if any(source in (".", "./") or relative == source.strip("./") or relative.startswith(source.strip("./") + "/")
               for source in sources):
            included.add(relative)
    return included


def local_apps() -> list[str]:
    return [app for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()]


def test_every_installed_app_and_the_project_shell_are_in_the_image():
    image = files_in_image()

    missing = [app for app in [*local_apps(), "config"] if f"{app.replace('.', '/')}/__init__.py" not in image]
    assert missing == [], f"INSTALLED_APPS packages the Dockerfile leaves out: {missing}"
    assert "manage.py" in image
    for app in local_apps():
        package = ROOT / app.replace(".", "/")
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(ROOT).as_posix() in image, f"{path.relative_to(ROOT)} is not copied"


def test_local_data_secrets_and_caches_stay_out_of_the_image():
    patterns = dockerignore_patterns()

    for path in [".venv/bin/python", "var/secret_key", "var/pg/postgresql.conf", ".env", ".git/HEAD", "staticfiles/x.css",
                 "core/__pycache__/x.pyc", "tests/__pycache__/x.pyc", ".pytest_cache/v/x", "notifications/x.pyc"]:
        assert ignored(path, patterns), f"{path} would be copied into the image"


def test_the_image_collects_static_files_and_its_default_command_resolves():
    instructions = dockerfile_instructions()
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "collectstatic" in runs
    assert "requirements.txt" in runs and "requirements-dev.txt" not in runs
    cmd = next(arguments for instruction, arguments in instructions if instruction == "CMD")
    assert_command_resolves(json_or_shell(cmd))


def json_or_shell(arguments: str) -> list[str]:
    return yaml.safe_load(arguments) if arguments.lstrip().startswith("[") else shlex.split(arguments)


# --- the services ------------------------------------------------------------------------------


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def assert_command_resolves(argv: list[str]) -> None:
    program = argv[0]
    if program == "python":
        if argv[1] == "-m":
            assert module_exists(argv[2]), f"python -m {argv[2]}: no such module"
            if argv[2] == "celery":
                assert_command_resolves(["celery", *argv[3:]])
        else:
            assert argv[1] == "manage.py" and argv[2] in get_commands(), f"manage.py {argv[2]}: no such command"
    elif program == "gunicorn":
        assert (ROOT / argv[argv.index("-c") + 1]).exists() if "-c" in argv else True
        module, _, attribute = argv[-1].partition(":")
        assert module_exists(module), f"gunicorn {argv[-1]}: no module {module}"
        assert re.search(rf"^{attribute}\s*=", (ROOT / (module.replace(".", "/") + ".py")).read_text(), re.M)
    elif program == "celery":
        assert argv[1] == "-A" and module_exists(f"{argv[2]}.celery"), f"celery -A {argv[2]}: no Celery app"
        assert argv[3] in ("worker", "beat")
    else:
        raise AssertionError(f"unexpected program {program!r} in {argv}")


def test_the_compose_file_builds_one_image_and_every_service_command_resolves():
    assert {"bootstrap", "web", "socket", "worker-urgent", "worker-bulk", "beat"} <= set(APP_SERVICES)
    for name, service in APP_SERVICES.items():
        assert "command" in service, f"{name} has no command"
        assert_command_resolves(service["command"])


def variables_herald_reads() -> set[str]:
    names = set()
    for relative in CONFIG_READERS:
        for node in ast.walk(ast.parse((ROOT / relative).read_text())):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                function = ast.unparse(node.func)
                if function in ("env_str", "env_int", "env_float", "env_bool", "os.environ.get", "os.environ.setdefault",
                                "env_seconds_by_category"):
                    names.add(node.args[0].value)
    return names


def test_every_variable_compose_sets_is_one_herald_reads():
    read = variables_herald_reads()

    for name, service in APP_SERVICES.items():
        unknown = sorted(set(service.get("environment", {})) - read)
        assert unknown == [], f"{name} sets variables Herald never reads: {unknown}"


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return test[1:] if test[0] == "CMD" else shlex.split(test[1]) if test[0] == "CMD-SHELL" else test


def test_every_long_running_service_has_a_healthcheck_on_something_that_exists():
    for name, service in SERVICES.items():
        if service.get("restart") == "no" or service.get("profiles"):
            continue  # the one-shot bootstrap; services of an opt-in profile (monitoring) are not Herald's
        assert "healthcheck" in service, f"{name} has no healthcheck"
        argv = healthcheck_argv(service)
        urls = re.findall(r"https?://[^/\s'\"]+(/[^\s'\"]*)", " ".join(argv))
        for path in urls:
            try:
                resolve(path)
            except Resolver404:
                pytest.fail(f"{name}'s healthcheck asks for {path}, which Herald does not serve")
        if "core.liveness" in argv:
            assert argv[argv.index("core.liveness") + 1:][:2] == ["check", service["environment"]["HERALD_LIVENESS_FILE"]], (
                f"{name}'s healthcheck reads another file than the one its process keeps"
            )
        assert urls or "core.liveness" in argv or argv[0] in ("pg_isready", "redis-cli"), f"{name}: {argv}"


def test_only_the_front_is_published_and_it_serves_the_shipped_nginx_config():
    published = {name for name, service in SERVICES.items() if service.get("ports") and not service.get("profiles")}
    assert published == {"proxy"}
    for name in ("prometheus", "grafana"):  # the monitoring profile publishes on the host's loopback only
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"])
    assert SERVICES["proxy"]["image"].startswith("nginx:")
    mounted = [volume.split(":") for volume in SERVICES["proxy"]["volumes"]]
    assert ["./deploy/nginx.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounted
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server web:8000;" in nginx and "server socket:8001;" in nginx


def test_every_app_service_waits_for_the_bootstrap_and_the_socket_url_follows_the_public_one():
    for name, service in APP_SERVICES.items():
        if name != "bootstrap":
            assert service["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully", name
        environment = service["environment"]
        assert environment["HERALD_CLIENT_IP_HEADER"] == "HTTP_X_FORWARDED_FOR"
        assert "PUBLIC_BASE_URL" in environment
        assert environment.get("HERALD_INBOX_SOCKET_URL", "") in ("", "${HERALD_INBOX_SOCKET_URL:-}")


def test_the_dockerignore_matcher_follows_dockers_rules():
    patterns = ["var", "**/__pycache__", "*.pyc", "!keep.pyc", ".env*"]

    assert ignored("var/pg/x", patterns) and ignored("a/b/__pycache__/c.pyc", patterns) and ignored(".env.local", patterns)
    assert ignored("x.pyc", patterns) and not ignored("keep.pyc", patterns) and not ignored("core/x.py", patterns)
    assert not fnmatch.fnmatch("variables.py", "var")


def test_collectstatic_runs_on_exactly_what_the_image_copies(tmp_path):
    # given the build context as the Dockerfile's COPY lines and .dockerignore leave it
    for relative in files_in_image():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes((ROOT / relative).read_bytes())

    # when the Dockerfile's collectstatic step runs there, as it does (no database, no Redis)
    env = {"PATH": os.environ["PATH"], "DJANGO_SECRET_KEY": "collectstatic-only", "HERALD_VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": "postgresql://unused@localhost/unused", "REDIS_URL": "redis://localhost:6379/0"}
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)

    # then it succeeds and collects the admin's, the API docs' and the inbox widget's files
    assert result.returncode == 0, result.stderr[-3000:]
    collected = {p.relative_to(tmp_path / "staticfiles").as_posix() for p in (tmp_path / "staticfiles").rglob("*")}
    assert {"admin/css/base.css", "inbox/inbox.js"} <= collected
