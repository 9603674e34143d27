# predwatch's image: the service (`predwatch run`) and, in the docker-compose stack, the
# demo's traffic producer (`python -m predwatch.demo.produce`).
#   docker build -t predwatch .
#   docker run -v $PWD/predwatch.yaml:/etc/predwatch/predwatch.yaml:ro -p 127.0.0.1:9108:9108 predwatch
# The config must set http.host: 0.0.0.0 for /metrics to be reachable from outside the
# container (see deploy/predwatch/predwatch.yaml).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/predwatch
# Every dependency has a wheel for this platform: no compiler is needed.
COPY pyproject.toml README.md ./
COPY predwatch ./predwatch
RUN pip install . \
    && groupadd --system --gid 10001 predwatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin predwatch

# Nothing runs as root; the service only reads its config and serves HTTP.
USER 10001:10001
EXPOSE 9108
ENTRYPOINT ["predwatch"]
CMD ["run", "--config", "/etc/predwatch/predwatch.yaml"]
