"""Content ids of pairs: the same (prompt, prefix, chosen, rejected) always gets the same id.

Because the id is a hash of the content, a pair produced twice (a redelivered queue entry, a retried
PutPairs) is stored once.
"""

from __future__ import annotations

import hashlib

from shared.protos.intervene.v1 import common_pb2


def pair_id(pair: common_pb2.Pair) -> str:
    """sha256 (hex) of the system turn, user prompt, shared prefix, chosen and rejected suffixes."""
    digest = hashlib.sha256()
    for part in (pair.prompt.system, pair.prompt.text, pair.prefix, pair.chosen, pair.rejected):
        encoded = part.encode("utf-8")
        # Length-prefix each part so that moving text across a boundary changes the id.
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def shard_of(identifier: str, num_shards: int) -> int:
    """The export shard of a pair: a stable function of its id, uniform over shards."""
    return int(identifier[:16], 16) % num_shards
