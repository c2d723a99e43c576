"""FLOPs of one call, counted by `torch.utils.flop_counter`."""

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Total FLOPs of `fn(*args, **kwargs)`, run once under `torch.no_grad()`.

    Counts the operators `FlopCounterMode` has formulas for (matmul, linear, bmm, convolutions,
    scaled-dot-product attention, ...) at 2 FLOPs per multiply-accumulate: `nn.Linear(i, o)` on a
    batch of B costs 2 * B * i * o. Element-wise work (activations, norms, adds) is not counted,
    so the total is the usual "model FLOPs", not a hardware operation count. Divide by the batch
    size for FLOPs per image.

    Args:
        fn: the callable to measure, e.g. a decoder's forward.
        *args: positional arguments for `fn`.
        **kwargs: keyword arguments for `fn`.

    Returns:
        Total FLOPs as an int.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())
