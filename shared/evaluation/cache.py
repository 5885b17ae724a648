"""A disk cache of decoded evaluation prompts, so that an interrupted evaluation resumes where it stopped.

Decoding is the evaluation's cost (hundreds of prompts per model on a CPU); judging is cheap next to it. Each rollout
is appended to `<folder>/rollouts.bin` as it is decoded (length-prefixed serialized `Rollout` messages, flushed and
fsynced per batch), keyed by a hash of everything that decides it: the prompt's id and text, the adapter and the
sampling parameters. A batch whose prompts are all cached is not decoded again; a partly cached batch decodes only
the rest. A torn last record (a kill mid-write) is ignored on load.

    generate = cached_generate(backend.generate, out_dir / "generation-cache")
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path

from shared.evaluation.runner import Generate
from shared.protos.intervene.v1 import common_pb2, generation_pb2

_FILE = "rollouts.bin"
_HEADER = struct.Struct(">32sI")


def _key(prompt: common_pb2.Prompt, request: generation_pb2.GenerateRequest) -> bytes:
    digest = hashlib.sha256()
    for part in (prompt.id, prompt.text, prompt.system, request.adapter):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(request.sampling.SerializeToString(deterministic=True))
    return digest.digest()


def _load(path: Path) -> dict[bytes, common_pb2.Rollout]:
    cached: dict[bytes, common_pb2.Rollout] = {}
    if not path.is_file():
        return cached
    data = path.read_bytes()
    position = 0
    while position + _HEADER.size <= len(data):
        key, size = _HEADER.unpack_from(data, position)
        body = data[position + _HEADER.size : position + _HEADER.size + size]
        if len(body) < size:
            break
        cached[key] = common_pb2.Rollout.FromString(body)
        position += _HEADER.size + size
    return cached


class GenerationCache:
    """The cached rollouts of one folder, and how many requests it answered."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / _FILE
        self.rollouts = _load(self.path)
        self.hits = 0
        self.misses = 0

    def add(self, keys: list[bytes], rollouts: Sequence[common_pb2.Rollout]) -> None:
        with self.path.open("ab") as out:
            for key, rollout in zip(keys, rollouts, strict=True):
                body = rollout.SerializeToString()
                out.write(_HEADER.pack(key, len(body)) + body)
                self.rollouts[key] = rollout
            out.flush()
            os.fsync(out.fileno())


def cached_generate(generate: Generate, folder: Path) -> Generate:
    """`generate` behind the cache in `folder` (n = 1 requests, as the evaluation runner sends)."""
    cache = GenerationCache(folder)

    def cached(requests: Sequence[generation_pb2.GenerateRequest]) -> list[generation_pb2.GenerateResponse]:
        replies = []
        for request in requests:
            keys = [_key(prompt, request) for prompt in request.prompts]
            missing = [i for i, key in enumerate(keys) if key not in cache.rollouts]
            cache.hits += len(keys) - len(missing)
            cache.misses += len(missing)
            if missing:
                partial = generation_pb2.GenerateRequest()
                partial.CopyFrom(request)
                del partial.prompts[:]
                partial.prompts.extend(request.prompts[i] for i in missing)
                [reply] = generate([partial])
                cache.add([keys[i] for i in missing], list(reply.rollouts))
            replies.append(generation_pb2.GenerateResponse(rollouts=[cache.rollouts[key] for key in keys]))
        return replies

    cached.cache = cache  # type: ignore[attr-defined]
    return cached
