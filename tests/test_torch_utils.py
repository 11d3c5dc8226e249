"""Small torch helpers against their definitions."""

from __future__ import annotations

import pytest
import torch

from maml_rl.utils.torch_utils import discounted_reverse_cumsum


@pytest.mark.parametrize("factor", [0.0, 0.5, 0.99, 1.0])
def test_discounted_reverse_cumsum_equals_the_recursion(factor: float) -> None:
    x = torch.randn(3, 17, 4, dtype=torch.float64)
    expected = torch.zeros_like(x)
    running = torch.zeros_like(x[:, 0])
    for t in range(16, -1, -1):
        running = x[:, t] + factor * running
        expected[:, t] = running
    torch.testing.assert_close(discounted_reverse_cumsum(x, factor), expected, rtol=1e-12, atol=1e-12)
