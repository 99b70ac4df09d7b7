FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY replaylens replaylens
COPY config config
COPY schemas schemas
COPY streams streams
COPY aggregates aggregates
COPY sinks sinks
COPY alerts alerts
COPY api api
# A C compiler for the ingest scans (streams/_scan.c), removed once they are built.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && (cd / && python -c "import replaylens.streams._scan") \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["replaylens"]
CMD ["worker"]
