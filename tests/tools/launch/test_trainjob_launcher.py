"""The TrainJob (Kubeflow Trainer v2) launcher against a fake Kubernetes API server.

No Kubernetes API server (nor Kubeflow Trainer, nor JobSet) can run on this machine, so a real HTTP server in
the test speaks the endpoints the launcher uses: create / get / delete a TrainJob, list its pods, read (and
follow) a pod's log. It checks each created TrainJob against the Trainer v2.3.0 CRD schema (k8s/crds/), as the
API server would, and plays the controllers' part: it creates the JobSet's pods, labelled as JobSet labels them,
and sets the conditions the test chooses. Everything on the client side is real: the kubernetes client, HTTP
on loopback, the CLI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from tests.deploy.manifests import jsonschema, trainjob_validator, validate_trainjob
from tools.cli.main import cli
from tools.launch.base import JobState, JobStatus
from tools.launch.cluster import ClusterOptions
from tools.launch.job import TrainJob

k8s = pytest.importorskip("kubernetes.client", reason="the deploy extra is not installed: pip install '.[deploy]'")

from tools.launch.trainjob import JOB_INDEX_LABEL, JOBSET_NAME_LABEL, REPLICATED_JOB_LABEL, TrainJobLauncher  # noqa: E402

JOBS_PATH = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{}/trainjobs"


class FakeTrainer:
    """In-memory TrainJobs and the pods their JobSets would run, served over HTTP."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.pod_phase = "Pending"
        self.lock = threading.Lock()

    def pods(self, namespace: str, name: str) -> list[dict]:
        """One pod per node, named and labelled as JobSet names them (<jobset>-<replicated job>-<index>-0)."""
        job = self.jobs[(namespace, name)]
        return [
            {
                "metadata": {
                    "name": f"{name}-node-{index}-0",
                    "namespace": namespace,
                    "labels": {
                        JOBSET_NAME_LABEL: name,
                        REPLICATED_JOB_LABEL: "node",
                        JOB_INDEX_LABEL: str(index),
                    },
                },
                "status": {"phase": self.pod_phase},
            }
            for index in range(job["spec"]["trainer"].get("numNodes", 1))
        ]

    def set_condition(self, namespace: str, name: str, condition: str, message: str = "") -> None:
        with self.lock:
            conditions = self.jobs[(namespace, name)].setdefault("status", {}).setdefault("conditions", [])
            conditions.append(
                {
                    "type": condition,
                    "status": "True",
                    "reason": condition,
                    "message": message,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            )


def _handler(state: FakeTrainer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: dict | str) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> None:
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
            self._send(code, {**status, "message": message})

        def _route(self) -> tuple[str, list[str], dict[str, list[str]]]:
            url = urlsplit(self.path)
            state.requests.append((self.command, url.path))
            return url.path, url.path.strip("/").split("/"), parse_qs(url.query)

        def do_POST(self) -> None:
            path, parts, _ = self._route()
            if path != JOBS_PATH.format(parts[-2] if len(parts) > 1 else ""):
                return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                validate_trainjob(body)
            except (jsonschema.ValidationError, AssertionError) as error:
                return self._status(422, "Invalid", f"TrainJob is invalid: {str(error).splitlines()[0]}")
            key = (parts[-2], body["metadata"]["name"])
            with state.lock:
                if key in state.jobs:
                    return self._status(
                        409, "AlreadyExists", f'trainjobs.trainer.kubeflow.org "{key[1]}" already exists'
                    )
                state.jobs[key] = body
            self._send(201, body)

        def do_GET(self) -> None:
            path, parts, query = self._route()
            if path.startswith("/apis/trainer.kubeflow.org/") and len(parts) == 7:
                job = state.jobs.get((parts[4], parts[6]))
                if job is None:
                    return self._status(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{parts[6]}" not found')
                return self._send(200, job)
            if parts[:2] == ["api", "v1"] and parts[-1] == "pods":
                selector = dict(s.split("=") for s in query["labelSelector"][0].split(","))
                key = (parts[3], selector[JOBSET_NAME_LABEL])
                pods = state.pods(*key) if key in state.jobs else []
                pods = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
            if parts[:2] == ["api", "v1"] and parts[-1] == "log":
                assert query["container"] == ["node"], "the trainer's container is the runtime's `node`"
                return self._send(200, f"step 1 loss 0.69 on {parts[5]}\nstep 2 loss 0.61 on {parts[5]}\n")
            self._status(404, "NotFound", path)

        def do_DELETE(self) -> None:
            _, parts, _ = self._route()
            with state.lock:
                if len(parts) != 7 or state.jobs.pop((parts[4], parts[6]), None) is None:
                    return self._status(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{parts[-1]}" not found')
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    return Handler


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeTrainer, k8s.Configuration]]:
    trainjob_validator()  # skips here, not inside the server's thread, when the CRD file is missing
    state = FakeTrainer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, k8s.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def launcher(configuration: k8s.Configuration, **options: object) -> TrainJobLauncher:
    return TrainJobLauncher(
        ClusterOptions(namespace="training", release="prod", **options), client_configuration=configuration
    )


def test_submit_creates_a_trainjob_the_crd_accepts(fake_api: tuple[FakeTrainer, k8s.Configuration]) -> None:
    state, configuration = fake_api
    job = TrainJob("dpo-v3", env={"INTERVENE_TRAINER_BETA": "0.2"}, nodes=2, nproc_per_node=4)
    assert launcher(configuration, gpus_per_node=4, queue="team-a").submit(job) == "dpo-v3"
    created = state.jobs[("training", "dpo-v3")]
    assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert created["spec"]["runtimeRef"]["name"] == "torch-distributed"
    trainer = created["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["command"] == ["torchrun", "-m", "services.trainer"]
    # Four GPUs per node: the torch plugin's `auto` gives four processes, so none is sent.
    assert "numProcPerNode" not in trainer and trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 4
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["INTERVENE_TRAINER_BETA"] == "0.2"
    assert env["INTERVENE_TRAINER_PAIR_STORE"] == "prod-intervene-pairstore:50054"
    assert ("POST", JOBS_PATH.format("training")) in state.requests


def test_a_cpu_job_sends_its_process_count(fake_api: tuple[FakeTrainer, k8s.Configuration]) -> None:
    state, configuration = fake_api
    launcher(configuration, gpus_per_node=0).submit(TrainJob("dpo-cpu", nproc_per_node=2))
    trainer = state.jobs[("training", "dpo-cpu")]["spec"]["trainer"]
    assert trainer["numProcPerNode"] == 2 and "nvidia.com/gpu" not in trainer["resourcesPerNode"]["limits"]


def test_a_second_submit_of_the_same_name_fails(fake_api: tuple[FakeTrainer, k8s.Configuration]) -> None:
    _, configuration = fake_api
    launcher(configuration).submit(TrainJob("dpo-v3"))
    with pytest.raises(RuntimeError, match=r'Failed to create TrainJob training/dpo-v3: .*"dpo-v3" already exists'):
        launcher(configuration).submit(TrainJob("dpo-v3"))


def test_status_logs_wait_and_delete_follow_the_job(
    fake_api: tuple[FakeTrainer, k8s.Configuration], capsys: pytest.CaptureFixture[str]
) -> None:
    state, configuration = fake_api
    jobs = launcher(configuration)
    jobs.submit(TrainJob("dpo-v4", nodes=2))
    assert jobs.status("dpo-v4").state is JobState.PENDING
    state.set_condition("training", "dpo-v4", "Suspended", "Kueue: waiting for quota in team-a")
    assert jobs.status("dpo-v4") == JobStatus("dpo-v4", JobState.PENDING, "Kueue: waiting for quota in team-a")
    state.jobs[("training", "dpo-v4")]["status"]["conditions"].clear()
    state.pod_phase = "Running"
    assert jobs.status("dpo-v4").state is JobState.RUNNING

    assert jobs.logs("dpo-v4") == {
        "dpo-v4-node-0-0": "step 1 loss 0.69 on dpo-v4-node-0-0\nstep 2 loss 0.61 on dpo-v4-node-0-0\n",
        "dpo-v4-node-1-0": "step 1 loss 0.69 on dpo-v4-node-1-0\nstep 2 loss 0.61 on dpo-v4-node-1-0\n",
    }
    jobs.logs("dpo-v4", follow=True)
    assert "[dpo-v4-node-1-0] step 2 loss 0.61 on dpo-v4-node-1-0" in capsys.readouterr().out

    state.set_condition("training", "dpo-v4", "Complete", "TrainJob is completed")
    status = jobs.wait("dpo-v4", timeout_s=30, poll_s=0.1)
    assert status.state is JobState.SUCCEEDED and status.message == "TrainJob is completed"

    jobs.delete("dpo-v4")
    assert ("training", "dpo-v4") not in state.jobs
    with pytest.raises(RuntimeError, match=r'TrainJob training/dpo-v4: .*"dpo-v4" not found'):
        jobs.status("dpo-v4")
    with pytest.raises(RuntimeError, match="Failed to delete TrainJob training/dpo-v4"):
        jobs.delete("dpo-v4")


def test_wait_reports_a_failed_job_and_times_out_on_a_stuck_one(
    fake_api: tuple[FakeTrainer, k8s.Configuration],
) -> None:
    state, configuration = fake_api
    jobs = launcher(configuration)
    jobs.submit(TrainJob("dpo-v5"))
    with pytest.raises(TimeoutError, match=r"TrainJob training/dpo-v5 still Pending after 0\.2 s"):
        jobs.wait("dpo-v5", timeout_s=0.2, poll_s=0.05)
    state.set_condition("training", "dpo-v5", "Failed", "node-0 exited with code 1")
    status = jobs.wait("dpo-v5", timeout_s=30, poll_s=0.1)
    assert status.state is JobState.FAILED and "exited with code 1" in status.message


def test_the_fake_api_server_refuses_a_trainjob_the_crd_rejects(
    fake_api: tuple[FakeTrainer, k8s.Configuration],
) -> None:
    """The fake checks what it is sent: a field the v2.3.0 CRD does not have is refused, as by a real API server."""
    state, configuration = fake_api
    body = TrainJobLauncher(ClusterOptions(namespace="training")).manifest(TrainJob("x"))
    body["spec"]["trainer"]["numProcPerNode"] = "auto"  # a string: v2.3 takes an integer only
    api = k8s.CustomObjectsApi(k8s.ApiClient(configuration))
    with pytest.raises(k8s.ApiException) as raised:
        api.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "training", "trainjobs", body)
    assert raised.value.status == 422 and not state.jobs


def test_the_cli_drives_a_trainjob_through_a_kubeconfig(
    fake_api: tuple[FakeTrainer, k8s.Configuration], tmp_path: Path
) -> None:
    """`intervene train submit|logs|wait|delete --api trainjob` with a kubeconfig, as a user runs them."""
    state, configuration = fake_api
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": configuration.host}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
                "current-context": "fake",
            }
        )
    )
    where = ["--api=trainjob", "--namespace=training", f"--kubeconfig={kubeconfig}"]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "submit", *where, "--name=dpo-v6", "--set=beta=0.2", "--queue=team-a"])
    assert result.exit_code == 0, result.output
    assert "submitted dpo-v6 (TrainJob)" in result.output and "--api trainjob --follow" in result.output
    assert state.jobs[("training", "dpo-v6")]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"

    again = runner.invoke(cli, ["train", "submit", *where, "--name=dpo-v6"])
    assert again.exit_code == 1 and "submit dpo-v6: Failed to create TrainJob" in again.output

    state.pod_phase = "Running"
    result = runner.invoke(cli, ["train", "logs", *where, "dpo-v6"])
    assert result.exit_code == 0 and "== dpo-v6-node-0-0" in result.output

    state.set_condition("training", "dpo-v6", "Failed", "OOMKilled")
    result = runner.invoke(cli, ["train", "wait", *where, "dpo-v6", "--poll=0.1"])
    assert result.exit_code == 1 and "dpo-v6: Failed: OOMKilled" in result.output

    result = runner.invoke(cli, ["train", "delete", *where, "dpo-v6"])
    assert result.exit_code == 0 and not state.jobs
    result = runner.invoke(cli, ["train", "delete", *where, "dpo-v6"])
    assert result.exit_code == 1 and "delete dpo-v6: Failed to delete TrainJob training/dpo-v6" in result.output
