"""Wall-clock timing: warm-up, then the median of repeats, with fixed threads and device syncs."""

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

Timing = dict[str, Any]  # {"median_ms": float, "min_ms": float, "all_ms": list[float]}


def cuda_sync_if_needed(device: torch.device | str) -> Callable[[], None] | None:
    """A `sync` callable for `measure_ms`: synchronises `device` if it is CUDA, else None.

    CUDA kernels run asynchronously, so without a sync the timer measures the launch only.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)


@contextlib.contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """Run the block with `torch.set_num_threads(n)`, restoring the previous count afterwards."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_counts(warmup: int, repeats: int) -> None:
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")


def _time_once(fn: Callable[[], Any], sync: Callable[[], None] | None) -> float:
    if sync is not None:
        sync()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) * 1e3


def _summary(all_ms: list[float]) -> Timing:
    return {"median_ms": statistics.median(all_ms), "min_ms": min(all_ms), "all_ms": all_ms}


def measure_ms(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 5,
    sync: Callable[[], None] | None = None,
) -> Timing:
    """Time `fn()` in milliseconds: `warmup` untimed calls, then `repeats` timed ones.

    Args:
        fn: zero-argument callable; bind inputs beforehand so only the work of interest is timed.
        warmup: untimed calls first (allocator, caches, lazy initialisation).
        repeats: timed calls.
        sync: called before starting and after stopping each timer, e.g.
            `cuda_sync_if_needed(device)`.

    Returns:
        `{"median_ms", "min_ms", "all_ms"}`, `all_ms` in call order.
    """
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        fn()
    return _summary([_time_once(fn, sync) for _ in range(repeats)])


def interleaved_timings(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 2,
    repeats: int = 5,
    sync: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Time several settings round-robin, so that machine drift (other jobs, thermals) hits all.

    Each round runs every setting once; the starting setting rotates from round to round so none is
    always first after a switch. Warm-up rounds are interleaved the same way.

    Args:
        fns: name -> zero-argument callable.
        warmup: untimed rounds.
        repeats: timed rounds.
        sync: as in `measure_ms`.

    Returns:
        name -> `{"median_ms", "min_ms", "all_ms"}`, as `measure_ms` returns.
    """
    _check_counts(warmup, repeats)
    if not fns:
        raise ValueError("fns is empty")
    names = list(fns)
    all_ms: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = _time_once(fns[name], sync)
            if round_ >= warmup:
                all_ms[name].append(elapsed)
    return {name: _summary(all_ms[name]) for name in names}
