"""Launch suffix-DPO training runs: one `JobLauncher` interface; Kubernetes back ends for a
Kubeflow PyTorchJob (training operator v1) and a TrainJob (Kubeflow Trainer v2), and a local one.

Shaped like kubeflow/sdk's trainer client: `TrainJob` says what to run, a back end says where.
`intervene train submit|logs|wait|delete` (tools/cli/train_submit.py) is the command-line face.
"""
