# The image of Autoloader's own services (api, scheduler-sync, the discovery worker and S3
# event consumer, processor) and of its set-up steps (migrations, topics, buckets).
# docker-compose.yml picks the process with `command`; Spark runs in its own server, so no JDK.
FROM python:3.11-slim

# A container of this image is production unless told otherwise: its services then refuse the
# development stack's passwords and keys (docs/configuration.md). docker-compose.yml, the dev
# stack, sets AUTOLOADER_ENV=development.
ENV AUTOLOADER_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in a layer of their own, so that a code change does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source stays in /app: alembic.ini there points at shared/migrations.
COPY . .
RUN pip install -c constraints.txt . \
    && rm -rf build *.egg-info

RUN useradd --create-home --uid 10001 --user-group autoloader
USER autoloader

EXPOSE 8000
CMD ["autoloader-api", "serve"]
