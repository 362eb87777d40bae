FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Runtime requirements only: tests, the simulator and the embedded servers of `make run`
# are in requirements-dev.txt.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The whole project: .dockerignore keeps out local data and secrets (var/, .env), the
# virtualenv, caches and what only development uses. tests/test_deploy.py checks that every
# INSTALLED_APPS package is in.
COPY . .

# Settings require these to be set; collectstatic connects to neither.
RUN DJANGO_SECRET_KEY=collectstatic-only \
    DATABASE_URL=postgresql://unused@localhost/unused \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 herald
USER herald

EXPOSE 8000 8001
# The REST API; docker-compose.yml runs the other processes from this image with their own commands.
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"]
