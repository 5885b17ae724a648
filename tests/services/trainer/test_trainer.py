"""`python -m services.trainer`: bad input fails before training, DDP replicas stay identical under torchrun
(one node, two processes; two simulated nodes), and a run killed at step k resumes to the same adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from shared.config.trainer import TrainerSettings
from shared.training.loop import TrainingInputError, run
from tests.services.trainer.conftest import benign_rows, final_record, run_trainer, trainer_env, write_rows
from tools.redis_process import free_port


def _settings(tmp_path, tiny_model_dir, **overrides) -> TrainerSettings:
    values = {
        "model": str(tiny_model_dir),
        "output_dir": tmp_path / "run",
        "batch_size": 2,
        "grad_accumulation": 1,
        "lora_targets": ["q_proj", "v_proj"],
        "progress": False,
        "plot": False,
    }
    if "pair_store" not in overrides:
        values["pairs_file"] = write_rows(tmp_path / "pairs.jsonl", benign_rows(4))
    values.update(overrides)
    return TrainerSettings(**values)


def test_missing_pairs_file_is_refused_before_training(tmp_path, tiny_model_dir):
    with pytest.raises(TrainingInputError, match="does not exist"):
        run(_settings(tmp_path, tiny_model_dir, pairs_file=tmp_path / "nope.jsonl"))


def test_existing_adapter_folder_is_refused_with_the_next_version(tmp_path, tiny_model_dir):
    settings = _settings(tmp_path, tiny_model_dir, adapter_name="policy-v3")
    settings.final_adapter_dir().mkdir(parents=True)
    with pytest.raises(TrainingInputError, match="policy-v4"):
        run(settings)


def test_unreachable_pair_store_is_refused(tmp_path, tiny_model_dir):
    settings = _settings(tmp_path, tiny_model_dir, pair_store=f"127.0.0.1:{free_port()}", pair_store_timeout_s=1.0)
    with pytest.raises(TrainingInputError, match="did not answer"):
        run(settings)


def test_unversioned_adapter_name_and_two_sources_are_invalid_settings(tmp_path):
    with pytest.raises(ValueError, match="adapter_name"):
        TrainerSettings(pairs_file=tmp_path / "p.jsonl", adapter_name="policy")
    with pytest.raises(ValueError, match="exactly one pair source"):
        TrainerSettings(pairs_file=tmp_path / "p.jsonl", pair_store="127.0.0.1:1")


def test_only_bad_pairs_give_a_clear_error_with_counts(tmp_path, tiny_model_dir):
    good = benign_rows(3)
    bad = [
        {**good[0], "id": "mismatch", "prompt": "something else"},
        {**good[1], "id": "empty", "chosen": "  "},
        {**good[2], "id": "same", "rejected": good[2]["chosen"]},
        {**good[2], "id": "long", "prompt": good[2]["context"] + "word " * 300, "prefix": "word " * 300},
    ]
    pairs = write_rows(tmp_path / "bad.jsonl", bad)
    with pytest.raises(TrainingInputError) as error:
        run(_settings(tmp_path, tiny_model_dir, pairs_file=pairs, max_prefix_tokens=128))
    message = str(error.value)
    for reason in ("prefix_mismatch", "empty_suffix", "identical_suffixes", "prefix_too_long"):
        assert reason in message


def test_no_torchrun_variables_with_world_size_is_refused(tmp_path, tiny_model_dir):
    env = trainer_env(tiny_model_dir, write_rows(tmp_path / "p.jsonl", benign_rows(8)), tmp_path / "run")
    env.update({"WORLD_SIZE": "2", "RANK": "1"})
    result = run_trainer(env)
    assert result.returncode != 0
    assert "launch with torchrun" in result.stderr


def _adapter(output):
    return load_file(output / "adapters" / "policy-v1" / "adapter_model.safetensors")


@pytest.mark.slow
def test_two_processes_keep_identical_replicas_and_fsdp_agrees(tmp_path, tiny_model_dir):
    pairs = write_rows(tmp_path / "pairs.jsonl", benign_rows(16))
    launch = ["--nproc-per-node=2", "--master-addr=127.0.0.1"]
    ddp = run_trainer(
        trainer_env(tiny_model_dir, pairs, tmp_path / "ddp", max_steps=2), [*launch, f"--master-port={free_port()}"]
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    final = final_record(tmp_path / "ddp")
    assert len(final["replica_digests"]) == 2 and len(set(final["replica_digests"])) == 1
    assert final["data"] == {"read": 16, "used": 16}

    fsdp = run_trainer(
        trainer_env(tiny_model_dir, pairs, tmp_path / "fsdp", max_steps=2, strategy="fsdp"),
        [*launch, f"--master-port={free_port()}"],
    )
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    expected, got = _adapter(tmp_path / "ddp"), _adapter(tmp_path / "fsdp")
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
def test_two_simulated_nodes_keep_identical_replicas(tmp_path, tiny_model_dir):
    pairs = write_rows(tmp_path / "pairs.jsonl", benign_rows(16))
    env = trainer_env(tiny_model_dir, pairs, tmp_path / "run", max_steps=2)
    port = free_port()
    common = ["--nnodes=2", "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}"]
    command = [sys.executable, "-m", "torch.distributed.run"]
    nodes = [
        subprocess.Popen(
            [*command, *common, f"--node-rank={rank}", "-m", "services.trainer"],
            cwd=env["PYTHONPATH"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    final = final_record(tmp_path / "run")
    assert len(final["replica_digests"]) == 2 and len(set(final["replica_digests"])) == 1


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_adapter(tmp_path, tiny_model_dir):
    pairs = write_rows(tmp_path / "pairs.jsonl", benign_rows(12))
    straight = run_trainer(trainer_env(tiny_model_dir, pairs, tmp_path / "straight", max_steps=5))
    assert straight.returncode == 0, straight.stderr[-3000:]

    resumed_env = trainer_env(tiny_model_dir, pairs, tmp_path / "resumed", max_steps=5)
    killed = run_trainer({**resumed_env, "INTERVENE_TRAINER_EXIT_AFTER_STEPS": "3"})
    assert killed.returncode == 75, killed.stderr[-3000:]
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text() == "step-00000002"
    assert not (tmp_path / "resumed" / "adapters" / "policy-v1").exists()
    again = run_trainer(resumed_env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumes from" in again.stderr

    expected, got = _adapter(tmp_path / "straight"), _adapter(tmp_path / "resumed")
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] == got[name]).all(), name


def test_promotion_to_an_unreachable_generation_service_names_the_adapter(tmp_path):
    from shared.training.promote import promote_adapter

    with pytest.raises(RuntimeError, match="promote it later"):
        promote_adapter(f"127.0.0.1:{free_port()}", None, "policy-v1", tmp_path, timeout_s=1.0)
