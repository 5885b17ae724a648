"""The trainer streams its shard from a real pair store (gRPC on loopback, real redis-server) and saves it, so a
resumed run reads the same pairs."""

from __future__ import annotations

import json

import pytest

from services.pairstore.server import build_spec
from shared.config.pairstore import PairStoreSettings
from shared.config.trainer import TrainerSettings
from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect
from shared.rpc.server import start_server
from shared.training.loop import run
from tests.shared.pairs.factories import make_pair

TOKEN, READ_TOKEN = "call-token", "read-token"


@pytest.mark.slow
def test_trains_from_the_pair_store(tmp_path, redis_url, tiny_model_dir):
    settings = PairStoreSettings(
        port=0, redis_url=redis_url, auth_token=TOKEN, read_token=READ_TOKEN, consume_queue=False
    )
    server = start_server(build_spec(settings), settings)
    try:
        writer = pairstore_pb2_grpc.PairStoreServiceStub(connect(server.address, token=TOKEN))
        writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(i) for i in range(6)]))
        trainer = TrainerSettings(
            model=str(tiny_model_dir),
            pair_store=server.address,
            pair_store_token=READ_TOKEN,
            output_dir=tmp_path / "run",
            batch_size=2,
            grad_accumulation=1,
            max_steps=2,
            lora_targets=["q_proj", "v_proj"],
            progress=False,
            plot=False,
        )
        result = run(trainer)
    finally:
        server.stop(grace=None)
    assert result.data == {"read": 6, "used": 6}
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    saved = json.loads((tmp_path / "run" / "data" / "shard-0-of-1.json").read_text())
    assert saved["snapshot_id"] == "6" and len(saved["pairs"]) == 6
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000002" / "state.json").read_text())
    assert state["snapshot_id"] == "6"
    _loads_with_peft(tiny_model_dir, result.adapter_dir)


def _loads_with_peft(model_dir, adapter_dir):
    """The final folder is a plain PEFT adapter: peft loads it onto the base model with the trained weights."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter_dir)
    saved = load_file(adapter_dir / "adapter_model.safetensors")
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert len(saved) == len(loaded) > 0
    for name, value in saved.items():
        match = next(p for n, p in loaded.items() if n.replace(".default", "") == name)
        torch.testing.assert_close(match, value, atol=0, rtol=0)
    assert any(v.abs().sum() > 0 for n, v in saved.items() if "lora_B" in n)
