# Hotline ACD engine image: slim, non-root, multi-stage. Asterisk runs elsewhere (its own
# container, deploy/asterisk/Dockerfile, or a host) and reaches the engine over FastAGI
# (4573); the engine reaches Asterisk over AMI and serves the API/wallboard on 8080.
#
#   docker build -t hotline-acd .
#   docker run --env-file engine.env -v ./acd.yaml:/etc/acd/acd.yaml:ro hotline-acd
#
# See docs/deployment.md. Base images are pinned to a release line, never :latest.
# PYTHON_IMAGE overrides the base (a registry mirror, or the offline stand-in that
# scripts/docker-smoke builds from Debian packages); the default is what ships.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: wheels for the project (acd, routing, api + api/static, agi_scripts) and
# every dependency, so the runtime stage needs no compiler and no network index.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY acd ./acd
COPY routing ./routing
COPY api ./api
COPY agi_scripts ./agi_scripts
# tzdata: IANA zones for business hours, whether or not the base image ships them.
RUN pip wheel --wheel-dir /wheels . tzdata

# ---- runtime
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    ACD_CONFIG=/etc/acd/acd.yaml
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent \
        --shell /usr/sbin/nologin acd
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels hotline-acd tzdata \
    && rm -rf /wheels \
    && python -c "import api, pathlib; p = pathlib.Path(api.__file__).parent / 'static'; \
assert (p / 'wallboard.html').is_file() and (p / 'wallboard.js').is_file(), p"
COPY deploy/engine/healthcheck.py /usr/local/lib/acd/healthcheck.py
COPY deploy/engine/node_config.py /usr/local/lib/acd/node_config.py
# A default config so the image starts; mount the real one over it (read-only).
COPY config/acd.sample.yaml /etc/acd/acd.yaml
# Where `acd asterisk-config -o` writes the generated Asterisk includes (a named volume
# mounted here starts out owned by acd, see deploy/compose.yaml).
RUN mkdir -p /etc/acd/asterisk && chown acd:acd /etc/acd/asterisk
USER acd
WORKDIR /tmp
EXPOSE 4573 8080
# /healthz when the config has an api: section, else a TCP connect to FastAGI
# (python + urllib: there is no curl in the slim image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/lib/acd/healthcheck.py"]
# SIGTERM (docker stop): stop accepting, drain, release the HA lease. Give it more than
# engine.drain_timeout: docker stop --time 30 / compose stop_grace_period.
STOPSIGNAL SIGTERM
# The AMI secret and API tokens come from the environment (ACD_AMI_SECRET, ...), never
# from the image.
ENTRYPOINT ["acd"]
CMD ["serve", "--config", "/etc/acd/acd.yaml"]
