# ngshare server image. Build: docker build -t ngshare:0.1.0 .
# Runs as a non-root user with a read-only root filesystem: everything it writes
# goes to /srv/ngshare (a volume) and /tmp (an emptyDir in the Helm chart).
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install '.[s3]'

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="ngshare" \
      org.opencontainers.image.description="The nbgrader exchange as a JupyterHub service"
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /srv/ngshare --create-home ngshare
USER 10001:10001
WORKDIR /srv/ngshare
ENV NGSHARE_HOST=0.0.0.0 \
    NGSHARE_PORT=8080 \
    NGSHARE_DATA_DIR=/srv/ngshare \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/srv/ngshare"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(0)"]
ENTRYPOINT ["ngshare"]
CMD ["serve"]
