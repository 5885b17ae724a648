"""`intervene rollout "PROMPT"`: one safe rollout from the intervention service, interventions marked.

The trace printed is the one the service returned: never reasoning that was judged unsafe. Each point
where a compliance cue was cut and a safety trigger took over is marked `[intervention round R, step H]`
with the trigger in green. `--stream` prints the trace as the service streams it.
"""

from __future__ import annotations

from pathlib import Path

import click
import grpc

from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc
from tools.cli.endpoints import address_option, fail_on_rpc_error, open_channel, token_option

_VERDICTS = {common_pb2.VERDICT_SAFE: "safe", common_pb2.VERDICT_HARMFUL: "harmful"}


def sampling_options(command):
    """Decoding flags shared by `rollout`, `submit` and `demo`."""
    for option in (
        click.option("--temperature", type=float, help="Sampling temperature (service default: 0.6)."),
        click.option("--max-reasoning-tokens", type=int, help="Reasoning token budget."),
        click.option("--max-response-tokens", type=int, help="Response token budget."),
        click.option("--sampling-seed", type=int, help="Seed for reproducible sampling."),
    ):
        command = option(command)
    return command


def sampling_params(
    temperature: float | None, max_reasoning_tokens: int | None, max_response_tokens: int | None, seed: int | None
) -> common_pb2.SamplingParams:
    params = common_pb2.SamplingParams()
    if temperature is not None:
        params.temperature = temperature
    if max_reasoning_tokens is not None:
        params.max_reasoning_tokens = max_reasoning_tokens
    if max_response_tokens is not None:
        params.max_response_tokens = max_response_tokens
    if seed is not None:
        params.seed = seed
    return params


def verdict(value: int) -> str:
    return _VERDICTS.get(value, "undetermined")


def marked_reasoning(rollout: common_pb2.Rollout, interventions: list[common_pb2.Intervention]) -> str:
    """The reasoning with a marker and the trigger highlighted at each intervention of the chain that led to it.

    Every branch of a round is cut at the same offset, so the chain's trigger of round r is the one found at
    that round's offset in the final reasoning.
    """
    chain: dict[int, common_pb2.Intervention] = {}
    for record in interventions:
        if rollout.reasoning.startswith(record.trigger_text, record.char_offset):
            chain.setdefault(record.round, record)
    text, cursor = [], 0
    for record in sorted(chain.values(), key=lambda r: r.char_offset):
        end = record.char_offset + len(record.trigger_text)
        text.append(rollout.reasoning[cursor : record.char_offset])
        text.append(click.style(f"[intervention round {record.round}, step {record.step}] ", fg="yellow", bold=True))
        text.append(click.style(rollout.reasoning[record.char_offset : end], fg="green"))
        cursor = end
    text.append(rollout.reasoning[cursor:])
    return "".join(text)


def print_summary(response: intervention_pb2.SafeRolloutResponse) -> None:
    for record in response.interventions:
        mark = click.style("safe", fg="green") if record.success else click.style("still unsafe", fg="red")
        click.echo(f"  round {record.round}  step {record.step:<3} trigger {record.trigger_id:<16} {mark}")
    judgement = response.judgement
    click.echo(
        f"verdicts: reasoning {verdict(judgement.reasoning_verdict)}, response {verdict(judgement.response_verdict)}"
        f"; pairs stored: {len(response.pair_ids)}"
    )


@click.command()
@click.argument("prompt")
@click.option("--system", default="", help="System turn.")
@click.option("--max-rounds", type=int, default=0, help="Intervention rounds at most (0: the service's default).")
@click.option("--trigger", "triggers", multiple=True, help="Trigger id to try (repeatable; default: the pool).")
@click.option("--stream", is_flag=True, help="Print the trace as it forms.")
@click.option("--no-store", is_flag=True, help="Do not store the pairs the interventions produce.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Deadline of the call, in seconds.")
@sampling_options
@address_option
@token_option
def rollout(
    prompt: str,
    system: str,
    max_rounds: int,
    triggers: tuple[str, ...],
    stream: bool,
    no_store: bool,
    timeout: float,
    temperature: float | None,
    max_reasoning_tokens: int | None,
    max_response_tokens: int | None,
    sampling_seed: int | None,
    address: str | None,
    token_file: Path | None,
) -> None:
    """Ask for a SAFE rollout of PROMPT; print the trace with interventions marked."""
    spec = intervention_pb2.SafeRolloutSpec(
        prompt=common_pb2.Prompt(text=prompt, system=system),
        sampling=sampling_params(temperature, max_reasoning_tokens, max_response_tokens, sampling_seed),
        max_rounds=max_rounds,
        trigger_ids=list(triggers),
    )
    if no_store:
        spec.store_pairs = False
    with open_channel("intervention", address, token_file) as channel:
        stub = intervention_pb2_grpc.InterventionServiceStub(channel)
        try:
            if stream:
                response = _stream(stub, spec, timeout)
            else:
                response = stub.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=timeout)
                _print_trace(response)
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "intervention") from None
    print_summary(response)


def _print_trace(response: intervention_pb2.SafeRolloutResponse) -> None:
    if response.withheld:
        click.echo(click.style("withheld: no trace was judged safe, so none is shown.", fg="red"))
        return
    click.echo("<think>")
    click.echo(marked_reasoning(response.rollout, list(response.interventions)))
    click.echo("</think>")
    click.echo(response.rollout.response)


def _stream(stub, spec, timeout: float) -> intervention_pb2.SafeRolloutResponse:
    sent = 0
    in_response = False
    click.echo("<think>")
    for event in stub.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=spec), timeout=timeout):
        kind = event.WhichOneof("event")
        if kind == "delta":
            if event.delta.segment == common_pb2.SEGMENT_RESPONSE and not in_response:
                click.echo("\n</think>")
                in_response = True
            click.echo(event.delta.text, nl=False)
            sent += len(event.delta.text)
        elif kind == "intervention":
            record = event.intervention
            if record.char_offset < sent:
                click.echo(click.style(f" [withdrawn: the last {sent - record.char_offset} characters]", fg="red"))
                sent = record.char_offset
            if record.success:
                click.echo(click.style(f"\n[intervention round {record.round}, step {record.step}] ", fg="yellow"))
        else:
            click.echo()
            if event.result.withheld:
                click.echo(click.style("withheld: no trace was judged safe; discard the text above.", fg="red"))
            return event.result
    raise click.ClickException("the stream ended without a result; retry")
