"""The Kubernetes launcher against a fake Kubernetes API server.

No Kubernetes API server (nor the training operator) can run on this machine, so a real HTTP server in the
test speaks the few endpoints `TrainingClient` uses: create / get / delete a PyTorchJob, list a job's pods,
read a pod's log. It checks each created job against the training operator v1.9.4 CRD schema, as the API
server would, and plays the operator's part by creating the pods and setting conditions the test chooses.
Everything on the client side is real: the kubeflow-training SDK, the kubernetes client, HTTP on loopback.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from tests.deploy.manifests import jsonschema, pytorchjob_validator, validate_pytorchjob
from tools.cli.main import cli
from tools.launch.base import JobState
from tools.launch.cluster import ClusterOptions
from tools.launch.job import TrainJob

pytest.importorskip("kubeflow.training", reason="the deploy extra is not installed: pip install '.[deploy]'")
from kubernetes import client as k8s

from tools.launch.kubernetes import KubernetesLauncher

JOBS = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")


class FakeKubernetes:
    """In-memory PyTorchJobs and their pods, served over HTTP."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def pods(self, namespace: str, job_name: str) -> list[dict]:
        job = self.jobs[(namespace, job_name)]
        pods = []
        for role, spec in job["spec"]["pytorchReplicaSpecs"].items():
            for index in range(spec["replicas"]):
                labels = {
                    "training.kubeflow.org/job-name": job_name,
                    "training.kubeflow.org/replica-type": role.lower(),
                    "training.kubeflow.org/replica-index": str(index),
                }
                if role == "Master":
                    labels["training.kubeflow.org/job-role"] = "master"
                pods.append(
                    {
                        "metadata": {
                            "name": f"{job_name}-{role.lower()}-{index}",
                            "namespace": namespace,
                            "labels": labels,
                        },
                        "status": {"phase": "Running"},
                    }
                )
        return pods

    def set_condition(self, namespace: str, name: str, condition: str, message: str = "") -> None:
        with self.lock:
            job = self.jobs[(namespace, name)]
            conditions = job.setdefault("status", {}).setdefault("conditions", [])
            conditions.append(
                {
                    "type": condition,
                    "status": "True",
                    "message": message,
                    "reason": condition,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "lastUpdateTime": "2026-01-01T00:00:00Z",
                }
            )


def _handler(state: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
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

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            state.requests.append(("POST", url.path))
            match = JOBS.match(url.path)
            if not match or match.group(2):
                return self._status(404, "NotFound", url.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                validate_pytorchjob(body)
            except (jsonschema.ValidationError, AssertionError) as error:
                return self._status(422, "Invalid", str(error).splitlines()[0])
            key = (match.group(1), body["metadata"]["name"])
            with state.lock:
                if key in state.jobs:
                    return self._status(409, "AlreadyExists", f'pytorchjobs "{key[1]}" already exists')
                state.jobs[key] = body
            self._send(201, body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            state.requests.append(("GET", url.path))
            if match := JOBS.match(url.path):
                job = state.jobs.get((match.group(1), match.group(2) or ""))
                return self._send(200, job) if job else self._status(404, "NotFound", "no such job")
            if match := PODS.match(url.path):
                selector = dict(s.split("=") for s in parse_qs(url.query)["labelSelector"][0].split(","))
                name = selector["training.kubeflow.org/job-name"]
                pods = state.pods(match.group(1), name) if (match.group(1), name) in state.jobs else []
                pods = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
            if match := POD_LOG.match(url.path):
                return self._send(200, f"step 1 loss 0.69 on {match.group(2)}\n")
            self._status(404, "NotFound", url.path)

        def do_DELETE(self) -> None:
            url = urlsplit(self.path)
            state.requests.append(("DELETE", url.path))
            match = JOBS.match(url.path)
            with state.lock:
                if not match or state.jobs.pop((match.group(1), match.group(2) or ""), None) is None:
                    return self._status(404, "NotFound", "no such job")
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    return Handler


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeKubernetes, k8s.Configuration]]:
    pytorchjob_validator()  # skips here, not inside the server's thread, when the CRD file is missing
    state = FakeKubernetes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    yield state, configuration
    server.shutdown()
    server.server_close()


def launcher(configuration: k8s.Configuration, namespace: str = "training") -> KubernetesLauncher:
    return KubernetesLauncher(ClusterOptions(namespace=namespace, release="prod"), client_configuration=configuration)


def test_submit_creates_the_job_the_crd_accepts(fake_api: tuple[FakeKubernetes, k8s.Configuration]) -> None:
    state, configuration = fake_api
    job = TrainJob("dpo-v3", env={"INTERVENE_TRAINER_BETA": "0.2"}, nodes=2, nproc_per_node=4)
    assert launcher(configuration).submit(job) == "dpo-v3"
    created = state.jobs[("training", "dpo-v3")]
    assert set(created["spec"]["pytorchReplicaSpecs"]) == {"Master", "Worker"}
    (container,) = created["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INTERVENE_TRAINER_BETA"] == "0.2"
    assert env["INTERVENE_TRAINER_PAIR_STORE"] == "prod-intervene-pairstore:50054"
    assert ("POST", "/apis/kubeflow.org/v1/namespaces/training/pytorchjobs") in state.requests


def test_a_second_submit_of_the_same_name_fails(fake_api: tuple[FakeKubernetes, k8s.Configuration]) -> None:
    _, configuration = fake_api
    job = TrainJob("dpo-v3")
    launcher(configuration).submit(job)
    with pytest.raises(RuntimeError, match="Failed to create"):
        launcher(configuration).submit(job)


def test_status_logs_wait_and_delete_follow_the_job(fake_api: tuple[FakeKubernetes, k8s.Configuration]) -> None:
    state, configuration = fake_api
    jobs = launcher(configuration)
    jobs.submit(TrainJob("dpo-v4", nodes=2))
    assert jobs.status("dpo-v4").state is JobState.PENDING
    state.set_condition("training", "dpo-v4", "Created")
    state.set_condition("training", "dpo-v4", "Running")
    assert jobs.status("dpo-v4").state is JobState.RUNNING

    logs = jobs.logs("dpo-v4")
    assert logs == {
        "dpo-v4-master-0": "step 1 loss 0.69 on dpo-v4-master-0\n",
        "dpo-v4-worker-0": "step 1 loss 0.69 on dpo-v4-worker-0\n",
    }

    state.set_condition("training", "dpo-v4", "Succeeded", "PyTorchJob dpo-v4 is successfully completed.")
    status = jobs.wait("dpo-v4", timeout_s=30, poll_s=1)
    assert status.state is JobState.SUCCEEDED and "completed" in status.message

    jobs.delete("dpo-v4")
    assert ("training", "dpo-v4") not in state.jobs
    with pytest.raises(RuntimeError):
        jobs.status("dpo-v4")


def test_wait_reports_a_failed_job(fake_api: tuple[FakeKubernetes, k8s.Configuration]) -> None:
    state, configuration = fake_api
    jobs = launcher(configuration)
    jobs.submit(TrainJob("dpo-v5"))
    state.set_condition("training", "dpo-v5", "Failed", "pod dpo-v5-master-0 exited with code 1")
    status = jobs.wait("dpo-v5", timeout_s=30, poll_s=1)
    assert status.state is JobState.FAILED
    assert "exited with code 1" in status.message


def test_the_fake_api_server_refuses_a_job_the_crd_rejects(fake_api: tuple[FakeKubernetes, k8s.Configuration]) -> None:
    """The fake checks what it is sent: a job with an invalid field is refused, as by a real API server."""
    state, configuration = fake_api
    api = k8s.CustomObjectsApi(k8s.ApiClient(configuration))
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "x"},
        "spec": {"nprocPerNode": 2},
    }
    with pytest.raises(k8s.ApiException) as raised:
        api.create_namespaced_custom_object("kubeflow.org", "v1", "training", "pytorchjobs", body)
    assert raised.value.status == 422
    assert not state.jobs


def test_the_cli_drives_a_job_through_a_kubeconfig(
    fake_api: tuple[FakeKubernetes, k8s.Configuration], tmp_path: Path
) -> None:
    """`intervene train submit|logs|wait|delete` with a kubeconfig, as a user runs them."""
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
    where = ["--namespace=training", f"--kubeconfig={kubeconfig}"]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "submit", *where, "--name=dpo-v6", "--set=beta=0.2"])
    assert result.exit_code == 0, result.output
    assert ("training", "dpo-v6") in state.jobs

    again = runner.invoke(cli, ["train", "submit", *where, "--name=dpo-v6"])
    assert again.exit_code == 1 and "submit dpo-v6: Failed to create" in again.output

    state.set_condition("training", "dpo-v6", "Running")
    result = runner.invoke(cli, ["train", "logs", *where, "dpo-v6"])
    assert result.exit_code == 0 and "== dpo-v6-master-0" in result.output

    state.set_condition("training", "dpo-v6", "Failed", "OOMKilled")
    result = runner.invoke(cli, ["train", "wait", *where, "dpo-v6", "--poll=1"])
    assert result.exit_code == 1 and "dpo-v6: Failed: OOMKilled" in result.output

    result = runner.invoke(cli, ["train", "delete", *where, "dpo-v6"])
    assert result.exit_code == 0 and not state.jobs
