"""Suffix DPO loss (DESIGN §1.5), with the metrics TRL's `DPOTrainer` logs under the same names.

With the conditioning ``s = (x, z[<h])`` (chat context plus the shared reasoning prefix), the chosen suffix ``c``
and the rejected suffix ``r``:

    L = -log sigmoid(beta * [(log pi(c|s) - log ref(c|s)) - (log pi(r|s) - log ref(r|s))]) + alpha * NLL(c|s)

* ``log pi(.|s)`` (policy) and ``log ref(.|s)`` (reference) are the sums of the suffix tokens' log-probs
  (``length_normalize=False``, the default and TRL's ``sigmoid`` loss) or their means (``length_normalize=True``,
  applied to policy and reference alike).
* ``NLL(c|s) = -log pi(c|s) / |c|``: the mean per-token negative log-likelihood of the chosen suffix, so that alpha
  does not scale with the suffix length. alpha is per pair: 0 for harmful pairs, 0.2 in the over-refusal stage.
* The batch loss is the mean over pairs. Rewards are ``beta * (log pi - log ref)``, as TRL reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SuffixLogps:
    """Per-pair suffix log-probs: sums over the suffix tokens and the suffix lengths (all shape ``[pairs]``)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor


def suffix_dpo_loss(
    policy: SuffixLogps,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    alpha: torch.Tensor | float = 0.0,
    length_normalize: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The batch loss and per-pair metrics (detached tensors, shape ``[pairs]``, TRL names).

    `ref_chosen` / `ref_rejected` are summed reference log-probs of the same suffixes (no gradient).
    """
    chosen_tokens = policy.chosen_tokens.to(policy.chosen.dtype).clamp(min=1)
    rejected_tokens = policy.rejected_tokens.to(policy.rejected.dtype).clamp(min=1)
    chosen, rejected = policy.chosen, policy.rejected
    ref_c, ref_r = ref_chosen.to(chosen.dtype), ref_rejected.to(rejected.dtype)
    if length_normalize:
        chosen, rejected = chosen / chosen_tokens, rejected / rejected_tokens
        ref_c, ref_r = ref_c / chosen_tokens, ref_r / rejected_tokens
    chosen_logratio = chosen - ref_c
    rejected_logratio = rejected - ref_r
    per_pair = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))
    alpha_t = torch.as_tensor(alpha, dtype=per_pair.dtype, device=per_pair.device)
    nll = -policy.chosen / chosen_tokens
    if bool((alpha_t != 0).any()):
        per_pair = per_pair + alpha_t * nll
    chosen_rewards = (beta * chosen_logratio).detach()
    rejected_rewards = (beta * rejected_logratio).detach()
    metrics = {
        "loss": per_pair.detach(),
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/margins": chosen_rewards - rejected_rewards,
        "rewards/accuracies": (chosen_rewards > rejected_rewards).to(per_pair.dtype),
        "logps/chosen": policy.chosen.detach(),
        "logps/rejected": policy.rejected.detach(),
        "nll/chosen": nll.detach(),
    }
    return per_pair.mean(), metrics
