# Hotline ACD engine image: slim, non-root. Asterisk runs elsewhere (its own container or
# host) and reaches the engine over FastAGI; the engine reaches Asterisk over AMI.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY acd ./acd
COPY routing ./routing
COPY api ./api
COPY agi_scripts ./agi_scripts
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent acd
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/acd.sample.yaml /etc/acd/acd.yaml
USER acd
EXPOSE 4573
# The AMI secret comes from the environment (ACD_AMI_SECRET), never from the image.
ENTRYPOINT ["acd"]
CMD ["serve", "--config", "/etc/acd/acd.yaml"]
