"""Suffix DPO trainer entrypoint, configured by `INTERVENE_TRAINER_*` variables (shared/config/trainer.py).

Run it under torchrun, which gives every process its rank (a PyTorchJob's own RANK is the pod index: torchrun reads
the operator's PET_* variables and overrides it):

    INTERVENE_TRAINER_PAIRS_FILE=pairs.jsonl torchrun --nproc-per-node 2 -m services.trainer
    INTERVENE_TRAINER_PAIRS_FILE=pairs.jsonl python -m services.trainer            # one process

Running the same command again resumes from the latest checkpoint in INTERVENE_TRAINER_OUTPUT_DIR.
Exit status: 0 done, 2 bad input (message on stderr), 75 stopped by INTERVENE_TRAINER_EXIT_AFTER_STEPS.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from shared.config.trainer import TrainerSettings
from shared.training.loop import TrainingInputError, run


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = TrainerSettings()
    except ValidationError as error:
        print(f"trainer settings are invalid:\n{error}", file=sys.stderr)
        return 2
    try:
        result = run(settings)
    except TrainingInputError as error:
        print(f"trainer: {error}", file=sys.stderr)
        return 2
    if result.adapter_dir is not None and result.rank == 0:
        logging.getLogger("intervene.trainer").info("adapter written to %s", result.adapter_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
