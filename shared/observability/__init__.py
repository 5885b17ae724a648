"""Operations: tracing (OpenTelemetry, off by default), domain metrics (Prometheus) and log context.

`tracing` sets up spans from the standard OTEL_* variables; `domain` holds the per-stage counters the services
and the trainer export; `logcontext` puts job, rollout and trace ids on every log line. docs/operations.md lists
every metric, the tracing variables and the chart's dashboard and alert values.
"""
