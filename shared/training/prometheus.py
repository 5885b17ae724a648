"""The training run's progress as Prometheus gauges on rank 0's /metrics endpoint.

The trainer is a torchrun job, not a server: rank 0 (the only rank that writes metrics.jsonl) serves its own
registry on `INTERVENE_TRAINER_METRICS_PORT` (0: off) while the job runs, and a PodMonitor (the chart's
`trainer.podMonitor`) scrapes it. No pushgateway: a scrape sees the run's latest step, and the series end with the
job. Values are the same numbers as metrics.jsonl (averaged over every rank's pairs of the step).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger("intervene.trainer")

# metrics.jsonl key -> (gauge name, help)
GAUGES = {
    "step": ("intervene_trainer_step", "Optimizer steps done."),
    "loss": ("intervene_trainer_loss", "Suffix-DPO loss of the last logged step."),
    "rewards/chosen": ("intervene_trainer_reward_chosen", "Mean implicit reward of the chosen suffixes."),
    "rewards/rejected": ("intervene_trainer_reward_rejected", "Mean implicit reward of the rejected suffixes."),
    "rewards/margins": ("intervene_trainer_reward_margin", "Mean reward margin (chosen - rejected)."),
    "rewards/accuracies": ("intervene_trainer_reward_accuracy_ratio", "Share of pairs whose chosen reward is higher."),
    "learning_rate": ("intervene_trainer_learning_rate", "Learning rate of the last step."),
    "grad_norm": ("intervene_trainer_grad_norm", "Gradient norm before clipping."),
    "tokens_per_s": ("intervene_trainer_tokens_per_second", "Tokens per second of the last step, over all ranks."),
    "step_s": ("intervene_trainer_step_seconds", "Duration of the last step."),
}


class TrainerMetrics:
    """The run's gauges and token counter, in a registry of their own (`serve` puts it on a port)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gauges = {key: Gauge(name, text, registry=self.registry) for key, (name, text) in GAUGES.items()}
        self._tokens = Counter(
            "intervene_trainer_tokens",
            "Tokens trained on (chosen and rejected suffixes, all ranks).",
            registry=self.registry,
        )
        self._server: Any = None

    @classmethod
    def serve(cls, port: int, host: str = "0.0.0.0") -> TrainerMetrics:
        """New gauges served on `port` (/metrics) until `close`."""
        metrics = cls()
        try:
            metrics._server, _ = start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as error:
            raise RuntimeError(
                f"cannot serve trainer metrics on port {port} (INTERVENE_TRAINER_METRICS_PORT): {error}"
            ) from error
        log.info("trainer metrics on port %d", port)
        return metrics

    def record(self, record: dict[str, Any]) -> None:
        """Sets the gauges from one metrics.jsonl record (keys it lacks are left as they were)."""
        for key, gauge in self._gauges.items():
            if key in record:
                gauge.set(float(record[key]))
        if "tokens" in record:
            self._tokens.inc(float(record["tokens"]))

    def close(self) -> None:
        """Stops serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
