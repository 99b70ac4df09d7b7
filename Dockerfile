FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY replaylens replaylens
COPY config config
COPY schemas schemas
COPY streams streams
COPY aggregates aggregates
COPY sinks sinks
COPY alerts alerts
COPY api api
RUN pip install --no-cache-dir .
ENTRYPOINT ["replaylens"]
CMD ["worker"]
