"""Each GPT avatar's key/value cache: a slot per avatar inside the venue.

A decision costs one token whatever the avatar's history because the keys and values of
its earlier visits are kept. ``ContextCache`` holds them for every avatar of a run: one
slot per avatar, reserved but not touched (the operating system backs only the slots in
use with memory, and freed slots are reused first, so the resident size follows the crowd
inside and nothing is ever copied to grow), ``lengths`` tokens valid in each. It knows
slots, not visits: which tokens a context holds and when it is re-encoded is the policy's
(``agents.gpt_policy``).
"""

from __future__ import annotations

import numpy as np
import torch

#: Caches are kept in float32 up to this size, in float16 beyond (100,000 avatars).
FLOAT32_CACHE_BYTES = 1 << 30


class ContextCache:
    """Slots of ``(layers, 2, heads, window, head_size)`` keys and values, one per avatar.

    ``cache`` (torch) and ``past`` (NumPy) are the same memory; ``slot[avatar]`` is the
    avatar's slot (-1: none), ``avatar_in[slot]`` the slot's avatar (-1: free),
    ``lengths[slot]`` its valid tokens."""

    def __init__(
        self,
        avatars: int,
        layers: int,
        heads: int,
        window: int,
        head_size: int,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (layers, 2, heads, window, head_size)
        per_avatar = 4 * int(np.prod(shape))
        if dtype is None:
            fits = avatars * per_avatar <= FLOAT32_CACHE_BYTES
            dtype = torch.float32 if fits else torch.float16
        self.window = window
        self.cache = torch.empty((avatars, *shape), dtype=dtype)
        self.past = self.cache.numpy()  # the same memory, as NumPy for the decoder
        self.slot = np.full(avatars, -1, dtype=np.int64)
        self.avatar_in = np.full(avatars, -1, dtype=np.int64)
        self.lengths = np.zeros(avatars, dtype=np.int64)
        self.free = np.arange(avatars - 1, -1, -1, dtype=np.int64)  # a stack: free on top
        self.n_free = avatars

    def holds(self, avatars: np.ndarray) -> np.ndarray:
        """(B,) bool: the avatars that have a slot."""
        return self.slot[avatars] >= 0

    def take(self, avatars: np.ndarray) -> np.ndarray:
        """Give each of ``avatars`` (none holding a slot) a fresh, zeroed, empty slot;
        returns the slots."""
        fresh = self.free[self.n_free - len(avatars) : self.n_free][::-1].copy()
        self.n_free -= len(avatars)
        self.slot[avatars] = fresh
        self.avatar_in[fresh] = avatars
        self.lengths[fresh] = 0
        self.past[fresh] = 0  # first touch of this memory
        return fresh

    def release(self, avatars: np.ndarray) -> None:
        """The avatars (heading out) give their slots back, if they hold one."""
        avatars = avatars[self.slot[avatars] >= 0]
        if len(avatars) == 0:
            return
        freed = self.slot[avatars]
        self.free[self.n_free : self.n_free + len(freed)] = freed
        self.n_free += len(freed)
        self.avatar_in[freed] = -1
        self.lengths[freed] = 0
        self.slot[avatars] = -1
