# The Astrocal image: API by default; the same image runs `astrocal worker` and `astrocal migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Locked dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --requirement requirements.lock

# Editable (compat mode: /app on sys.path) because the code reads sql/ next to app/ at runtime.
# setuptools comes from the lock, so the build needs no isolated environment.
COPY pyproject.toml ./
COPY app ./app
COPY workers ./workers
COPY sql ./sql
RUN pip install --no-deps --no-build-isolation \
        --config-settings editable_mode=compat --editable . \
    && useradd --system --user-group --no-create-home --home-dir /nonexistent astrocal

USER astrocal
EXPOSE 8000
CMD ["astrocal", "serve", "--host", "0.0.0.0", "--port", "8000"]
