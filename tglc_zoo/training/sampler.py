"""Batch samplers whose order depends only on (seed, epoch) -- the basis of exact resume and of
data-parallel runs that see the same global batches as a single process."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["GlobalBatchSampler", "ShardSampler"]


class GlobalBatchSampler(Sampler[list[int]]):
    """Shuffled global batches of ``batch_size`` indices; rank ``r`` of ``world`` gets the ``r``-th
    contiguous slice of each.

    The permutation of epoch ``e`` is ``torch.randperm(n, generator=manual_seed(seed + e))``, so an
    epoch's batches do not depend on anything that happened before it.  The last incomplete global
    batch is dropped (so every rank gets the same number of equally sized batches).  With
    ``world == 1`` the slice is the whole batch; a single process that splits each batch into
    ``world`` contiguous micro-batches (``--grad-accum``) sees exactly what ``world`` ranks see.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(f"the global batch size {batch_size} must be a positive multiple of the "
                             f"world size {world_size}")
        if num_samples < batch_size:
            raise ValueError(f"the training set has {num_samples} samples, fewer than one batch of {batch_size}; "
                             "lower --batch-size")
        self.num_samples, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Draw epoch ``epoch``'s order; iteration begins at its batch ``start_batch`` (a resumed epoch)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        """Batches in a whole epoch (iteration yields those from ``start_batch`` on)."""
        return self.num_samples // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g)
        else:
            order = torch.arange(self.num_samples)
        lo = self.rank * self.local_batch
        for b in range(self.start_batch, len(self)):
            start = b * self.batch_size + lo
            yield order[start:start + self.local_batch].tolist()


class ShardSampler(Sampler[int]):
    """Rank ``r``'s contiguous share of ``range(num_samples)``, without padding (for evaluation:
    the per-rank sums add up to exactly the whole set)."""

    def __init__(self, num_samples: int, *, rank: int = 0, world_size: int = 1) -> None:
        per = -(-num_samples // world_size)
        self.start, self.stop = min(rank * per, num_samples), min((rank + 1) * per, num_samples)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))
