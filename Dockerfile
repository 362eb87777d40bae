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

# Only the code the server runs, so that .venv/, tests/ and var/ (local data and
# secrets) stay out of the image. A new top-level app needs its line here.
COPY manage.py ./
COPY core ./core
COPY config ./config
COPY notifications ./notifications
COPY preferences ./preferences
COPY templates_app ./templates_app
COPY delivery ./delivery
COPY inbox ./inbox

# Settings require these to be set; collectstatic connects to neither.
RUN DJANGO_SECRET_KEY=collectstatic-only \
    DATABASE_URL=postgresql://unused@localhost/unused \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 herald
USER herald

EXPOSE 8000 8001
# The REST API; the inbox WebSocket server is the compose file's `socket` service (uvicorn).
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"]
