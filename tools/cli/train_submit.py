"""`intervene train submit|logs|wait|delete`: launch suffix-DPO training on Kubernetes or locally.

`submit` takes the trainer's settings exactly as local training does (INTERVENE_TRAINER_* variables, plus
`--set FIELD=VALUE`), checks them with TrainerSettings, and starts a PyTorchJob through the Kubeflow
training operator (`--backend kubernetes`, the default), a TrainJob through Kubeflow Trainer v2
(`--api trainjob`), or torchrun on this machine (`--backend local`). `--dry-run` prints the job's YAML
without a cluster:

    intervene train submit --name dpo-v2 --nodes 2 --nproc-per-node 8 --set adapter_name=policy-v2 --dry-run
    intervene train submit --api trainjob --name dpo-v2 --nodes 2 --nproc-per-node 8 --queue team-a --dry-run
    intervene train submit --backend local --nproc-per-node 2 --set pairs_file=pairs.jsonl
    intervene train logs dpo-v2 --follow;  intervene train wait dpo-v2;  intervene train delete dpo-v2

The commands join the `train` group with `add_job_commands(train)`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from shared.config.trainer import TrainerSettings
from tools.launch.base import ClusterJobLauncher, JobLauncher, JobState
from tools.launch.cluster import CLUSTER_FIELDS, ClusterOptions, release_fullname
from tools.launch.job import ENV_PREFIX, TrainJob, parse_overrides, settings_env
from tools.launch.local import LocalLauncher, torchrun_command

_BACKENDS = click.Choice(["kubernetes", "local"])
_APIS = click.Choice(["pytorchjob", "trainjob"])


def _launcher_options(command: Any) -> Any:
    """Options every job command shares: which back end, and where its jobs live."""
    for option in reversed(
        [
            click.option("--backend", type=_BACKENDS, default="kubernetes", show_default=True, help="Where jobs run."),
            click.option(
                "--api",
                type=_APIS,
                default="pytorchjob",
                show_default=True,
                help="Kubernetes: a PyTorchJob (training operator v1) or a TrainJob (Kubeflow Trainer v2).",
            ),
            click.option("--namespace", default="default", show_default=True, help="Kubernetes namespace."),
            click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubeconfig file (default: ~/.kube)."),
            click.option("--context", "kube_context", help="kubeconfig context."),
            click.option(
                "--run-root",
                type=click.Path(file_okay=False, path_type=Path),
                default=Path(".run/train"),
                show_default=True,
                help="Local back end: folder of the jobs' logs and state.",
            ),
        ]
    ):
        command = option(command)
    return command


def _cluster_launcher(api: str) -> type[ClusterJobLauncher]:
    """The Kubernetes back end of `api`, imported on first use: the image and the local back end do without
    the Kubernetes SDKs."""
    try:
        if api == "trainjob":
            from tools.launch.trainjob import TrainJobLauncher

            return TrainJobLauncher
        from tools.launch.kubernetes import KubernetesLauncher

        return KubernetesLauncher
    except ImportError as error:
        raise click.ClickException(
            f"the Kubernetes back end needs the kubeflow-training and kubernetes SDKs ({error}): "
            "pip install -c constraints.txt 'intervene[deploy]', or use --backend local"
        ) from error


def _launcher(
    backend: str,
    api: str,
    namespace: str,
    kubeconfig: str | None,
    kube_context: str | None,
    run_root: Path,
    **cluster: Any,
) -> JobLauncher:
    if backend == "local":
        return LocalLauncher(run_root=run_root)
    return _cluster_launcher(api)(
        ClusterOptions(namespace=namespace, **cluster), config_file=kubeconfig, context=kube_context
    )


def _settings(overrides: tuple[str, ...], cluster_pair_store: str | None) -> TrainerSettings:
    """TrainerSettings from the environment and `--set`; on a cluster the release's pair store is the source."""
    try:
        fields = parse_overrides(overrides)
        if cluster_pair_store is not None:
            # In the cluster pairs come from the release's pair store, unless a pairs file (a path on the
            # checkpoint volume) is named.
            from_file = "pairs_file" in fields or bool(os.environ.get(f"{ENV_PREFIX}PAIRS_FILE"))
            fields["pair_store"] = None if from_file else cluster_pair_store
        return TrainerSettings(**fields)
    except (ValueError, ValidationError) as error:
        raise click.ClickException(f"trainer settings: {error}") from error


@click.command("submit")
@_launcher_options
@click.option("--name", default="intervene-trainer", show_default=True, help="Job name (one per run).")
@click.option(
    "--nodes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Nodes (PyTorchJob: 1 Master + Workers; TrainJob: numNodes).",
)
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True, help="Processes per node.")
@click.option(
    "--gpus-per-node", type=click.IntRange(0), help="GPUs each pod requests (default: --nproc-per-node; 0: CPU)."
)
@click.option("--release", default="intervene", show_default=True, help="Helm release whose pair store it trains on.")
@click.option("--image", help="Trainer image (default: this version's, -gpu flavor when GPUs are requested).")
@click.option("--checkpoint-claim", default="intervene-trainer-checkpoints", show_default=True, help="Checkpoint PVC.")
@click.option("--cpu", default="8", show_default=True, help="CPU request and limit per pod.")
@click.option("--memory", default="64Gi", show_default=True, help="Memory request and limit per pod.")
@click.option("--service-account", help="The pods' ServiceAccount (e.g. the release's; default: the namespace's).")
@click.option("--queue", help="Kueue LocalQueue that admits the job (label kueue.x-k8s.io/queue-name).")
@click.option(
    "--runtime",
    default="torch-distributed",
    show_default=True,
    help="TrainJob: the ClusterTrainingRuntime it runs under.",
)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Trainer setting, e.g. beta=0.2.")
@click.option("--dry-run", is_flag=True, help="Print the job's YAML (or the local command) and start nothing.")
def submit(
    backend: str,
    api: str,
    namespace: str,
    kubeconfig: str | None,
    kube_context: str | None,
    run_root: Path,
    name: str,
    nodes: int,
    nproc_per_node: int,
    gpus_per_node: int | None,
    release: str,
    image: str | None,
    checkpoint_claim: str,
    cpu: str,
    memory: str,
    service_account: str | None,
    queue: str | None,
    runtime: str,
    overrides: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Start a training run from the trainer settings (INTERVENE_TRAINER_* and --set)."""
    if backend == "local":
        settings = _settings(overrides, cluster_pair_store=None)
        env = settings_env(settings, exclude=frozenset(f for f in TrainerSettings.model_fields if "token" in f))
    else:
        settings = _settings(overrides, cluster_pair_store=f"{release_fullname(release)}-pairstore:50054")
        dropped = sorted(f for f in settings.model_fields_set & CLUSTER_FIELDS if getattr(settings, f) is not None)
        dropped = [f for f in dropped if f != "pair_store"]
        if dropped:
            click.echo(
                f"note: {', '.join(ENV_PREFIX + f.upper() for f in dropped)} not sent: in the cluster the job "
                f"uses release {release!r}'s services, Secret and the checkpoint volume",
                err=True,
            )
        env = settings_env(settings, exclude=CLUSTER_FIELDS)
    try:
        job = TrainJob(name=name, env=env, nodes=nodes, nproc_per_node=nproc_per_node)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    cluster = {
        "release": release,
        "image": image,
        "gpus_per_node": nproc_per_node if gpus_per_node is None else gpus_per_node,
        "checkpoint_claim": checkpoint_claim,
        "cpu": cpu,
        "memory": memory,
        "service_account": service_account,
        "queue": queue,
    }
    if api == "trainjob":
        cluster["runtime"] = runtime
    if dry_run:
        if backend == "local":
            click.echo(" ".join([*(f"{k}={v}" for k, v in env.items()), *torchrun_command(job)]))
        else:
            import yaml

            document = _cluster_launcher(api)(ClusterOptions(namespace=namespace, **cluster)).manifest(job)
            click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)
        return
    launcher = _launcher(backend, api, namespace, kubeconfig, kube_context, run_root, **cluster)
    try:
        launcher.submit(job)
    except (RuntimeError, ValueError, FileExistsError) as error:
        raise click.ClickException(f"submit {name}: {error}") from error
    kind = "local" if backend == "local" else _cluster_launcher(api).kind
    api_flag = " --api trainjob" if backend != "local" and api == "trainjob" else ""
    click.echo(f"submitted {name} ({kind}); follow it with `intervene train logs {name}{api_flag} --follow`")


@click.command("logs")
@_launcher_options
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Stream the logs until the job ends.")
def logs(
    backend: str,
    api: str,
    namespace: str,
    kubeconfig: str | None,
    kube_context: str | None,
    run_root: Path,
    name: str,
    follow: bool,
) -> None:
    """Print the logs of job NAME (every pod, or the local torchrun)."""
    launcher = _launcher(backend, api, namespace, kubeconfig, kube_context, run_root)
    try:
        texts = launcher.logs(name, follow=follow)
    except (RuntimeError, FileNotFoundError) as error:
        raise click.ClickException(f"logs {name}: {error}") from error
    if not follow:
        for source, text in texts.items():
            click.echo(f"== {source}")
            click.echo(text, nl=not text.endswith("\n"))


@click.command("wait")
@_launcher_options
@click.argument("name")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=86400, show_default=True, help="Seconds.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=15, show_default=True, help="Poll interval.")
def wait(
    backend: str,
    api: str,
    namespace: str,
    kubeconfig: str | None,
    kube_context: str | None,
    run_root: Path,
    name: str,
    timeout_s: float,
    poll_s: float,
) -> None:
    """Wait for job NAME to finish; exits 1 when it failed."""
    launcher = _launcher(backend, api, namespace, kubeconfig, kube_context, run_root)
    try:
        status = launcher.wait(name, timeout_s=timeout_s, poll_s=poll_s)
    except (RuntimeError, TimeoutError, FileNotFoundError) as error:
        raise click.ClickException(f"wait {name}: {error}") from error
    click.echo(f"{name}: {status.state.value}{': ' + status.message if status.message else ''}")
    if status.state is not JobState.SUCCEEDED:
        sys.exit(1)


@click.command("delete")
@_launcher_options
@click.argument("name")
def delete(
    backend: str, api: str, namespace: str, kubeconfig: str | None, kube_context: str | None, run_root: Path, name: str
) -> None:
    """Stop job NAME and remove it (its checkpoints stay on their volume)."""
    launcher = _launcher(backend, api, namespace, kubeconfig, kube_context, run_root)
    try:
        launcher.delete(name)
    except (RuntimeError, FileNotFoundError) as error:
        raise click.ClickException(f"delete {name}: {error}") from error
    click.echo(f"deleted {name}")


JOB_COMMANDS = (submit, logs, wait, delete)


def add_job_commands(group: click.Group) -> None:
    """Register submit, logs, wait and delete on the `train` group."""
    for command in JOB_COMMANDS:
        group.add_command(command)
