# dip-cds: CDS Hooks 2.0 service for DIP (按病种分值付费).
# Build:  docker build -t dip-cds .
# Run:    docker run -p 8080:8080 -v dip-cds-data:/data dip-cds
#         (mount a config at /data/config.toml, or set DIP_CDS_<SECTION>__<KEY> env vars)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DIP_CDS_HOME=/data

WORKDIR /app
# Dependencies first, at the versions pinned by requirements.lock: this layer is rebuilt only when
# pyproject.toml or the lock changes, not on every code change.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c requirements.lock \
    && rm /tmp/requirements.txt \
    && useradd --system --uid 10001 --home-dir /data dipcds \
    && mkdir -p /data && chown dipcds /data
# Then the sources (.dockerignore keeps out the venvs, git history, tests and data stores).
COPY . .
RUN pip install --no-deps . && pip check

USER dipcds
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"

# Two sync workers fit a 2-core host; with JWT required and several workers set
# DIP_CDS_SECURITY__REDIS_URL (shared jti replay cache).
CMD ["dip-cds", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
