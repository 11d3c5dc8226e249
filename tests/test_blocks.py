"""Blocks of valid steps: same steps, same per-task means and Fisher products as the padded layout."""

from __future__ import annotations

import pytest
import torch

from maml_rl.episode import pack_steps
from maml_rl.policies import NormalMLPPolicy
from maml_rl.utils.blocks import adaptive_block_size, step_blocks
from maml_rl.utils.torch_utils import masked_mean


def packed_data(counts: list[int], n: int, seed: int = 0):
    """Packed [K, N] steps with the given valid counts per task (float64)."""
    g = torch.Generator().manual_seed(seed)
    k = len(counts)
    mask = (torch.arange(n).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)).double()
    obs = torch.randn(k, n, 3, generator=g, dtype=torch.float64) * mask[..., None]
    actions = torch.randn(k, n, 2, generator=g, dtype=torch.float64) * mask[..., None]
    advantages = torch.randn(k, n, generator=g, dtype=torch.float64) * mask
    return mask, obs, actions, advantages


@pytest.mark.parametrize("block_size", [1, 3, 4, 64])
def test_blocks_hold_exactly_the_valid_steps_of_each_task(block_size: int) -> None:
    counts = [7, 1, 12, 4]
    mask, obs, actions, advantages = packed_data(counts, 12)
    blocks = step_blocks(mask, obs, actions, advantages, block_size)
    assert blocks.observations.shape[1] == block_size
    assert blocks.counts.tolist() == counts
    for k, count in enumerate(counts):
        mine = blocks.task == k
        assert int(mine.sum()) == -(-count // block_size)  # ceil: fewer than block_size padded rows
        rows = blocks.mask[mine].reshape(-1) > 0
        assert int(rows.sum()) == count
        torch.testing.assert_close(blocks.observations[mine].reshape(-1, 3)[rows], obs[k, :count], rtol=0, atol=0)
        torch.testing.assert_close(blocks.actions[mine].reshape(-1, 2)[rows], actions[k, :count], rtol=0, atol=0)
        torch.testing.assert_close(blocks.advantages[mine].reshape(-1)[rows], advantages[k, :count], rtol=0, atol=0)
    assert torch.all(blocks.observations[blocks.mask == 0] == 0)
    values = torch.randn(*mask.shape, dtype=torch.float64) * mask
    block_values = step_blocks(mask, obs, actions, values, block_size).advantages
    torch.testing.assert_close(blocks.task_means(block_values), masked_mean(values, mask, (1,)))
    torch.testing.assert_close((blocks.task_mean_weights() * block_values).sum(), masked_mean(values, mask, (1,)).sum())


def test_blocks_from_episode_packing() -> None:
    """Episodes [K, T, B] -> pack_steps -> blocks keeps every valid step once."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 9, (3, 4), generator=g)
    mask = (torch.arange(8).view(1, 8, 1) < lengths.unsqueeze(1)).float()
    obs = torch.randn(3, 8, 4, 2, generator=g) * mask[..., None]
    packed_obs, packed_adv, packed_mask = pack_steps(mask, obs, mask * 2.0)
    blocks = step_blocks(packed_mask, packed_obs, packed_obs, packed_adv, 5)
    assert int(blocks.mask.sum()) == int(lengths.sum())
    assert torch.equal(blocks.counts, lengths.sum(1))
    torch.testing.assert_close(torch.sort(blocks.observations[blocks.mask > 0].sum(-1)).values,
                               torch.sort(obs[mask > 0].sum(-1)).values)


def test_gathered_parameters_give_each_block_its_task_and_sum_gradients() -> None:
    torch.manual_seed(0)
    policy = NormalMLPPolicy(3, 2, hidden_sizes=(5,)).double()
    counts = [6, 2, 9]
    mask, obs, actions, advantages = packed_data(counts, 9)
    blocks = step_blocks(mask, obs, actions, advantages, 4)
    stacked = {n: (p.detach().unsqueeze(0) + 0.1 * torch.randn(3, *p.shape, dtype=torch.float64)).requires_grad_()
               for n, p in policy.named_parameters()}
    padded = policy.forward_stacked(obs, stacked).log_prob(actions)
    blocked = policy.forward_stacked(blocks.observations, blocks.gather(stacked)).log_prob(blocks.actions)
    loss_padded = masked_mean(padded * advantages, mask, (1,)).sum()
    loss_blocked = blocks.task_means(blocked * blocks.advantages).sum()
    torch.testing.assert_close(loss_blocked, loss_padded, rtol=1e-12, atol=1e-12)
    grads_padded = torch.autograd.grad(loss_padded, list(stacked.values()))
    grads_blocked = torch.autograd.grad(loss_blocked, list(stacked.values()))
    for a, b in zip(grads_padded, grads_blocked):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_task_sums_are_autograds_backward_of_gather_bitwise(dtype) -> None:
    """``task_sums`` is the adjoint of ``gather`` as autograd computes it, bit for bit, also for
    a per-block tensor in the transposed layout of a weight gradient; the value-only gather
    (no gradient possible) copies the same values as the differentiable one."""
    g = torch.Generator().manual_seed(2)
    counts = [70, 3, 33, 0, 16]
    mask, obs, actions, advantages = packed_data(counts, 70)
    blocks = step_blocks(mask.to(dtype), obs.to(dtype), actions.to(dtype), advantages.to(dtype), 8)
    stacked = {"w": torch.randn(5, 6, 4, generator=g, dtype=dtype).requires_grad_(),
               "b": torch.randn(5, 6, generator=g, dtype=dtype).requires_grad_()}
    gathered = blocks.gather(stacked)
    with torch.no_grad():
        copied = blocks.gather(stacked)
    for name in stacked:
        assert torch.equal(copied[name], gathered[name]) and not copied[name].requires_grad
    rows = len(blocks.task)
    cotangents = {"w": torch.randn(rows, 4, 6, generator=g, dtype=dtype).transpose(1, 2),  # transposed layout
                  "b": torch.randn(rows, 6, generator=g, dtype=dtype)}
    loss = sum((gathered[name] * cotangents[name]).sum() for name in stacked)
    reference = torch.autograd.grad(loss, list(stacked.values()))
    sums = blocks.task_sums(cotangents)
    for name, ref in zip(stacked, reference):
        assert torch.equal(sums[name], ref) and sums[name].is_contiguous()
    assert torch.all(sums["b"][3] == 0)  # the task without steps has no block
    torch.testing.assert_close(sums["w"][0], cotangents["w"][blocks.task == 0].sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("copies", [2, 3])
def test_repeated_blocks_give_each_copy_the_sums_of_the_blocks_alone(copies: int) -> None:
    """``repeat``: copy c holds tasks c K ... c K + K - 1 over the same blocks; per-copy task sums
    (in both layouts), task means and gathers equal those of the blocks alone, bit for bit,
    with float32 weights of the sizes where one product over every copy had summed differently."""
    g = torch.Generator().manual_seed(3)
    counts = [700, 33, 250, 0, 416, 129, 64, 1000]
    mask, obs, actions, advantages = packed_data(counts, 1000)
    blocks = step_blocks(mask.float(), obs.float(), actions.float(), advantages.float(), 16)
    repeated = blocks.repeat(copies)
    k, rows = blocks.num_tasks, len(blocks.task)
    assert repeated.num_tasks == copies * k and repeated.copies == copies and blocks.repeat(copies) is repeated
    assert blocks.repeat(1) is blocks
    with pytest.raises(ValueError, match="already repeated"):
        repeated.repeat(2)
    per_copy = [{"w": torch.randn(rows, 10, 64, generator=g).transpose(1, 2),  # transposed layout
                 "b": torch.randn(rows, 64, generator=g)} for _ in range(copies)]
    stacked = {name: torch.cat([cotangent[name] for cotangent in per_copy]) for name in ("w", "b")}
    stacked["w"] = stacked["w"].transpose(1, 2).contiguous().transpose(1, 2)
    sums = repeated.task_sums(stacked)
    values = torch.randn(copies * rows, 16, generator=g)
    means = repeated.task_means(values)
    params = {"p": torch.randn(copies * k, 5, 3, generator=g)}
    gathered = repeated.gather(params)["p"]
    for c in range(copies):
        alone = blocks.task_sums(per_copy[c])
        for name in alone:
            assert torch.equal(sums[name][c * k:(c + 1) * k], alone[name]), (c, name)
        assert torch.equal(means[c * k:(c + 1) * k], blocks.task_means(values[c * rows:(c + 1) * rows]))
        assert torch.equal(gathered[c * rows:(c + 1) * rows], blocks.gather({"p": params["p"][c * k:(c + 1) * k]})["p"])
        for name in ("observations", "actions", "advantages", "mask"):
            assert torch.equal(getattr(repeated, name)[c * rows:(c + 1) * rows], getattr(blocks, name))


def test_fisher_product_on_blocks_equals_padded_layout() -> None:
    torch.manual_seed(0)
    policy = NormalMLPPolicy(3, 2, hidden_sizes=(5, 4)).double()
    counts = [6, 2, 9]
    mask, obs, actions, advantages = packed_data(counts, 9)
    blocks = step_blocks(mask, obs, actions, advantages, 4)
    stacked = {n: p.detach().unsqueeze(0) + 0.1 * torch.randn(3, *p.shape, dtype=torch.float64)
               for n, p in policy.named_parameters()}
    weights = mask / mask.sum(1, keepdim=True) / 3
    vector = torch.randn(sum(p.numel() for p in policy.parameters()), dtype=torch.float64)
    padded = policy.fisher_vector_product(obs, stacked, weights)(vector)
    blocked = policy.fisher_vector_product(blocks.observations, blocks.gather(stacked),
                                           blocks.task_mean_weights() / 3)(vector)
    torch.testing.assert_close(blocked, padded, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("counts", "expected"), [
    ([217] * 8, 64),            # early training: a quarter of 217 is 54 -> 64
    ([36, 40, 30, 36] * 2, 8),  # late training: a quarter of 36 is 9 -> 8, floored to 16 below
    ([1000, 3, 3], 1),          # median 3
    ([0, 0], 1),
])
def test_adaptive_block_size_follows_a_quarter_of_the_median_count(counts: list[int], expected: int) -> None:
    counts_tensor = torch.tensor(counts)
    assert adaptive_block_size(counts_tensor, largest=64, smallest=16) == min(max(expected, 16), 64)
    assert adaptive_block_size(counts_tensor, largest=1024, smallest=1) == expected
    assert adaptive_block_size(counts_tensor, largest=4, smallest=16) == 4  # a smaller largest wins


def test_adaptive_blocks_cut_padding_late_in_training() -> None:
    counts = [36, 40, 30, 36, 33, 35, 38, 35]  # 283 valid steps, as after ~400 default batches
    mask, obs, actions, advantages = packed_data(counts, 40)
    size = adaptive_block_size(mask.sum(1))
    rows = step_blocks(mask, obs, actions, advantages, size).mask.numel()
    assert size == 16 and rows == 368 < step_blocks(mask, obs, actions, advantages, 64).mask.numel() == 512
