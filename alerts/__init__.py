"""Alerting on frustration spikes (pure: no Kafka, DuckDB or HTTP). See README 'Alerts'."""
