"""Per-sample random draws for the training losses: the same sample draws the same numbers wherever it is.

A sample's draws (its stage time, noise, CFG dropout, distillation noises) come from its own generator,
seeded from (seed, step, global index in the step's batch). So a batch split over N processes, or into
micro-batches, draws exactly what the whole batch draws in one process (EDM2's StackedRandomGenerator
applied to training). Draws shared by the whole batch (the stage-path start of distillation) come from
one batch generator seeded from (seed, step), the same on every process.
"""

import hashlib
import struct
from collections.abc import Sequence

import torch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers: every part changes every bit (torch's CPU generator keeps 32 of them)."""
    digest = hashlib.blake2b(struct.pack(f"<{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SampleDraws:
    """Generators for a batch of samples and one for the whole batch.

    Args:
        indices: global index of each sample in its step's batch, length B.
        sample_generators: one generator per sample (consumed in order: each sample's draws depend
            only on its own generator, never on its neighbours).
        batch_generator: for draws shared by the whole batch.
    """

    def __init__(
        self,
        indices: Sequence[int],
        sample_generators: Sequence[torch.Generator],
        batch_generator: torch.Generator,
    ):
        if len(indices) != len(sample_generators):
            raise ValueError(f"got {len(indices)} indices but {len(sample_generators)} generators")
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)  # (B,)
        self.sample_generators = list(sample_generators)
        self.batch_generator = batch_generator

    @classmethod
    def for_step(cls, seed: int, step: int, indices: Sequence[int]) -> "SampleDraws":
        """The draws of samples ``indices`` (global positions in the batch) at training step ``step``."""
        gens = [torch.Generator().manual_seed(mix_seed(seed, step, int(i))) for i in indices]
        return cls(indices, gens, torch.Generator().manual_seed(mix_seed(seed, step, -1)))

    @classmethod
    def from_generator(cls, generator: torch.Generator, batch_size: int) -> "SampleDraws":
        """Draws for a batch of ``batch_size`` from a plain generator, which stands for its seed: the
        per-sample generators are seeded from its initial seed and it serves as the batch generator."""
        seed = generator.initial_seed()
        gens = [torch.Generator().manual_seed(mix_seed(seed, i)) for i in range(batch_size)]
        return cls(range(batch_size), gens, generator)

    def __len__(self) -> int:
        return len(self.sample_generators)

    def subset(self, positions: torch.Tensor) -> "SampleDraws":
        """The draws of the samples at ``positions`` (a (b,) index tensor into this batch); the
        generators are shared, not copied."""
        picked = [int(p) for p in positions]
        return SampleDraws(
            [int(self.indices[p]) for p in picked],
            [self.sample_generators[p] for p in picked],
            self.batch_generator,
        )

    def fork(self) -> "SampleDraws":
        """Copies of the generators at their current states: what the fork draws, this batch draws next
        too (e.g. to preview a loss's samples without consuming them)."""

        def copy(g: torch.Generator) -> torch.Generator:
            new = torch.Generator()
            new.set_state(g.get_state())
            return new

        return SampleDraws(
            self.indices.tolist(), [copy(g) for g in self.sample_generators], copy(self.batch_generator)
        )

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal numbers of shape (B, *shape), row i from sample i's generator."""
        return torch.stack([torch.randn(shape, generator=g) for g in self.sample_generators])

    def rand(self) -> torch.Tensor:
        """One uniform number in [0, 1) per sample: shape (B,)."""
        return torch.cat([torch.rand(1, generator=g) for g in self.sample_generators])


def as_draws(generator: "torch.Generator | SampleDraws", batch_size: int) -> SampleDraws:
    """Accept either a :class:`SampleDraws` of ``batch_size`` samples or a plain generator."""
    if isinstance(generator, SampleDraws):
        if len(generator) != batch_size:
            raise ValueError(f"draws are for {len(generator)} samples but the batch has {batch_size}")
        return generator
    if isinstance(generator, torch.Generator):
        return SampleDraws.from_generator(generator, batch_size)
    raise TypeError(f"expected a torch.Generator or SampleDraws, got {type(generator).__name__}")
