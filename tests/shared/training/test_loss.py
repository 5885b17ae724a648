"""The suffix DPO loss formula, its options and its TRL-named metrics."""

from __future__ import annotations

import math

import torch

from shared.training.loss import SuffixLogps, suffix_dpo_loss


def _logps(chosen, rejected, chosen_tokens=(1, 1), rejected_tokens=(1, 1)) -> SuffixLogps:
    return SuffixLogps(
        chosen=torch.tensor(chosen, requires_grad=True),
        rejected=torch.tensor(rejected, requires_grad=True),
        chosen_tokens=torch.tensor(chosen_tokens),
        rejected_tokens=torch.tensor(rejected_tokens),
    )


def test_formula_by_hand():
    policy = _logps([-10.0, -20.0], [-12.0, -15.0], (5, 10), (4, 2))
    ref_c, ref_r = torch.tensor([-11.0, -18.0]), torch.tensor([-11.0, -16.0])
    beta = 0.1
    loss, metrics = suffix_dpo_loss(policy, ref_c, ref_r, beta=beta)
    margins = [beta * ((-10 + 11) - (-12 + 11)), beta * ((-20 + 18) - (-15 + 16))]
    expected = sum(-math.log(1 / (1 + math.exp(-m))) for m in margins) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert metrics["rewards/margins"].tolist() == torch.tensor(margins).tolist()
    assert metrics["rewards/accuracies"].tolist() == [1.0, 0.0]
    assert set(metrics) >= {"loss", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"}


def test_alpha_adds_mean_token_nll_of_chosen_per_pair():
    policy = _logps([-10.0, -20.0], [-12.0, -15.0], (5, 10), (4, 2))
    ref_c, ref_r = policy.chosen.detach().clone(), policy.rejected.detach().clone()
    base, _ = suffix_dpo_loss(policy, ref_c, ref_r, beta=0.1)
    alpha = torch.tensor([0.0, 0.2])
    with_nll, _ = suffix_dpo_loss(policy, ref_c, ref_r, beta=0.1, alpha=alpha)
    assert math.isclose(with_nll.item() - base.item(), 0.2 * (20 / 10) / 2, rel_tol=1e-6)


def test_length_normalised_divides_policy_and_reference():
    policy = _logps([-10.0], [-12.0], (5,), (4,))
    loss, _ = suffix_dpo_loss(policy, torch.tensor([-5.0]), torch.tensor([-4.0]), beta=1.0, length_normalize=True)
    margin = (-10 / 5 + 5 / 5) - (-12 / 4 + 4 / 4)
    assert math.isclose(loss.item(), -math.log(1 / (1 + math.exp(-margin))), rel_tol=1e-6)


def test_gradients_push_chosen_up_and_rejected_down():
    policy = _logps([-10.0], [-10.0])
    loss, _ = suffix_dpo_loss(policy, torch.tensor([-10.0]), torch.tensor([-10.0]), beta=0.5)
    loss.backward()
    assert policy.chosen.grad.item() < 0 < policy.rejected.grad.item()
