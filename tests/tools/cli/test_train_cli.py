"""`intervene train`: settings are checked before anything starts, and --dry-run shows the torchrun command."""

from __future__ import annotations

from click.testing import CliRunner

from tools.cli.main import cli


def test_dry_run_prints_settings_and_torchrun(tmp_path, monkeypatch):
    for name in ("INTERVENE_TRAINER_PAIRS_FILE", "INTERVENE_TRAINER_PAIR_STORE"):
        monkeypatch.delenv(name, raising=False)
    pairs = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--pairs",
            str(pairs),
            "--nproc",
            "2",
            "--set",
            "beta=0.2",
            "--set",
            'lora_targets=["q_proj"]',
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"INTERVENE_TRAINER_PAIRS_FILE={pairs}" in result.output
    assert "INTERVENE_TRAINER_BETA=0.2" in result.output
    assert 'INTERVENE_TRAINER_LORA_TARGETS=["q_proj"]' in result.output
    assert "torch.distributed.run" in result.output and "--nproc-per-node=2" in result.output
    assert result.output.rstrip().endswith("-m services.trainer")


def test_bad_settings_say_what_to_fix(monkeypatch):
    for name in ("INTERVENE_TRAINER_PAIRS_FILE", "INTERVENE_TRAINER_PAIR_STORE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["train", "--dry-run"])
    assert result.exit_code == 2
    assert "exactly one pair source" in result.output
    result = CliRunner().invoke(cli, ["train", "--pairs", "p.jsonl", "--set", "nope=1", "--dry-run"])
    assert result.exit_code == 2 and "not a trainer setting" in result.output


def test_existing_adapter_is_refused_before_torchrun_starts(tmp_path, monkeypatch):
    for name in ("INTERVENE_TRAINER_PAIRS_FILE", "INTERVENE_TRAINER_PAIR_STORE"):
        monkeypatch.delenv(name, raising=False)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("")
    (tmp_path / "run" / "adapters" / "policy-v1").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["train", "--pairs", str(pairs), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "policy-v2" in result.output
