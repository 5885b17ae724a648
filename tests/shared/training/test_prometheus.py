"""Rank 0's trainer metrics endpoint serves the logged step's numbers as Prometheus gauges over HTTP."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from shared.training.prometheus import TrainerMetrics
from tools.redis_process import free_port


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_logged_steps_become_gauges_and_a_token_counter() -> None:
    port = free_port()
    metrics = TrainerMetrics.serve(port, host="127.0.0.1")
    try:
        for step, loss in ((1, 0.69), (2, 0.5)):
            metrics.record(
                {
                    "step": step,
                    "loss": loss,
                    "rewards/margins": 0.1 * step,
                    "rewards/accuracies": 0.75,
                    "tokens": 1000,
                    "tokens_per_s": 250.0,
                    "learning_rate": 5e-5,
                }
            )
        samples = scrape(port)
    finally:
        metrics.close()
    assert samples["intervene_trainer_step"] == 2
    assert samples["intervene_trainer_loss"] == 0.5
    assert samples["intervene_trainer_reward_margin"] == 0.2
    assert samples["intervene_trainer_reward_accuracy_ratio"] == 0.75
    assert samples["intervene_trainer_tokens_total"] == 2000
    assert samples["intervene_trainer_tokens_per_second"] == 250
