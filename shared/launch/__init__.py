"""Launch suffix-DPO training runs: one `JobLauncher` interface, a Kubernetes (PyTorchJob) and a local back end.

Shaped like kubeflow/sdk's trainer client: `TrainJob` says what to run, a back end says where.
`intervene train submit|logs|wait|delete` (shared/cli/train_submit.py) is the command-line face.
"""
