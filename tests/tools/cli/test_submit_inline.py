"""`intervene submit --dataset FILE` reads the file on the client and sends its prompts inline: the real intervention
service over real gRPC and Redis queues them without reading any file (its loader is made to refuse, standing in
for a service on a cluster that cannot see this machine's disk). Names still resolve on the service."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner

from shared.datasets import DatasetError, load_prompts, load_templates, wrap_with_templates
from shared.intervention import submission
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc
from shared.queues import WorkQueue
from shared.rpc.client import connect
from tests.services.intervention.test_server import TOKEN, serve
from tools.cli.main import cli
from tools.cli.submit import inline_local_files


def _files(tmp_path: Path) -> tuple[Path, Path]:
    prompts = tmp_path / "mine.csv"
    prompts.write_text("id,question,topic\n" + "".join(f"q{i},question number {i},t{i}\n" for i in range(6)))
    template = tmp_path / "story.txt"
    template.write_text("Story time: [INSERT PROMPT HERE] The end.")
    return prompts, template


def _service_cannot_read_files(*_args, **_kwargs):
    raise DatasetError("dataset", "this service cannot read the client's files")


def test_a_local_file_is_read_here_and_sent_inline(redis_url: str, tmp_path: Path, monkeypatch) -> None:
    prompts_file, template = _files(tmp_path)
    monkeypatch.setattr(submission, "load_prompts", _service_cannot_read_files)
    monkeypatch.setattr(submission, "load_templates", _service_cannot_read_files)
    monkeypatch.setenv("INTERVENE_TOKEN", TOKEN)
    server = serve(redis_url)
    try:
        args = ["submit", "--dataset", str(prompts_file), "--text-column", "question", "--limit", "3", "--seed", "2"]
        args += ["--template-file", str(template), "--no-wait", "--address", server.address]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert ": 3 prompts queued" in result.output
        job_id = result.output.split()[1].rstrip(":")
        job = intervention_pb2_grpc.InterventionServiceStub(connect(server.address, token=TOKEN)).GetJob(
            intervention_pb2.GetJobRequest(job_id=job_id)
        )
        assert job.job.name == "mine" and job.job.prompts == 3

        named = CliRunner().invoke(cli, ["submit", "--dataset", "advbench", "--no-wait", "--address", server.address])
        assert named.exit_code == 1 and "this service cannot read" in named.output  # names go to the service
    finally:
        server.stop(grace=None)

    queued = WorkQueue(redis.Redis.from_url(redis_url), "rollout.requested").read("inspect", "t", count=10, block_ms=0)
    sample = load_prompts(str(prompts_file), text_column="question", limit=3, seed=2)
    expected = wrap_with_templates(sample, load_templates(str(template)), seed=2)
    assert [d.message.prompt.id for d in queued] == [p.id for p in expected] and len(expected) == 3
    assert [d.message.prompt.text for d in queued] == [p.text for p in expected]
    assert all(d.message.prompt.dataset == "mine" and d.message.prompt.template == "story" for d in queued)


def test_prompts_given_inline_are_wrapped_in_a_local_template_file(tmp_path: Path) -> None:
    _, template = _files(tmp_path)
    request = intervention_pb2.SubmitPromptsRequest(
        prompts=[common_pb2.Prompt(text=text) for text in ("first", "second", "third")],
        template_file=str(template),
        limit=2,
    )
    inline = inline_local_files(request)
    assert [p.text for p in inline.prompts] == ["Story time: first The end.", "Story time: second The end."]
    assert len({p.id for p in inline.prompts}) == 2 and all(p.id.endswith("@story") for p in inline.prompts)
    assert (inline.template_file, inline.limit, inline.dataset) == ("", 0, "")


def test_names_stay_names_and_bad_files_name_the_option(tmp_path: Path) -> None:
    prompts_file, _ = _files(tmp_path)
    named = intervention_pb2.SubmitPromptsRequest(dataset="advbench", template_file="jailbreak-train", limit=5)
    assert inline_local_files(named) is named

    with pytest.raises(click.UsageError, match=r"^--text-column: .*has no column 'nope'"):
        inline_local_files(intervention_pb2.SubmitPromptsRequest(dataset=str(prompts_file), text_column="nope"))
    lone = tmp_path / "lone.txt"
    lone.write_text("no slot")
    with pytest.raises(click.UsageError, match=r"^--template-file: .*holds the slot"):
        inline_local_files(intervention_pb2.SubmitPromptsRequest(dataset=str(prompts_file), template_file=str(lone)))
    with pytest.raises(click.UsageError, match=r"^--limit: is -1"):
        inline_local_files(intervention_pb2.SubmitPromptsRequest(dataset=str(prompts_file), limit=-1))
    with pytest.raises(click.UsageError, match="over the 0 MiB one request may carry: sample fewer with --limit"):
        inline_local_files(intervention_pb2.SubmitPromptsRequest(dataset=str(prompts_file)), max_bytes=100)
