"""The live decoder: a key/value cache slot per sequence, and one new token for each.

A live step of the twin asks the GPT about the avatars whose visit ends in it: one new
token each, which attends to the keys and values of its sequence's earlier tokens, kept
here, so a decision costs one token whatever the history.

- ``ContextCache``: the keys and values, a slot per sequence (an avatar, live), in pages
  taken as its context grows.
- ``Decoder.step``: the new tokens of some sequences through the model, their keys and
  values written to their slots, in NumPy (``numpy_step``) on one thread. At a few dozen
  sequences the cost of ``GPT.decode_step`` is the dispatch of its some 50 tensor
  operations, not their arithmetic, and NumPy dispatches several times faster; at a
  thousand, one NumPy thread still matches one PyTorch thread. More threads than one would
  pay a little on a quiet machine and cost several times over on a busy one (another run, a
  browser), where threads that wait on each other wait on the other process too; so the
  live twin uses one core whatever the machine, without the user setting anything
  (``one_thread``; ``bench/bench_agents.py`` and ``bench/README.md`` measure both).
  The NumPy step runs the model's one definition of a block (``llm.model.block_step``,
  with ``NUMPY_OPS`` and ``cached_attention``) on float32 copies of the weights, taken
  when the decoder is made; the tests hold it to ``GPT.decode_step``'s numbers.
- ``Decoder.reencode``: whole windows of tokens into slots, one forward pass (PyTorch, one
  thread).

It knows slots and tokens, not avatars or visits: which tokens a sequence holds, and when
it is re-encoded, is the policy's (``agents.gpt_policy``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from llm.features import FEATURES, N_OPTION_STATES
from llm.model import GPT, NUMPY_OPS, block_step, cached_attention

#: Caches are kept in float32 up to this size, in float16 beyond (100,000 avatars). The
#: size is what every slot's full window would take (the festival's 30,000 avatars with
#: windows of 64: 1.97 GB); only the pages in use are ever touched (its run peaks at 1.34
#: GB in all, 0.25 GB more than with float16, as much as at windows of 32 before).
FLOAT32_CACHE_BYTES = 2 << 30
#: Tokens per page of a cache: a sequence holds whole pages, as many as its tokens need.
PAGE_TOKENS = 8


@cache
def _threadpools() -> ThreadpoolController:
    """The thread pools of the libraries loaded (found once: a scan of the process)."""
    return ThreadpoolController()


_inside_one_thread = threading.local()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one thread: NumPy's BLAS, OpenMP and PyTorch's intra-op pool,
    restored after (the user's own settings are left as they were). Inside another
    ``one_thread`` (a decoder step within the twin's step) it costs nothing."""
    if getattr(_inside_one_thread, "depth", 0):
        yield
        return
    before = torch.get_num_threads()
    with _threadpools().limit(limits=1):
        torch.set_num_threads(1)
        _inside_one_thread.depth = 1
        try:
            yield
        finally:
            _inside_one_thread.depth = 0
            torch.set_num_threads(before)


class ContextCache:
    """Keys and values of ``(layers, 2, heads, window, head_size)`` per sequence, kept in
    pages of ``page`` tokens.

    A sequence that needs a cache takes a *slot*: a row of the page table, whose pages are
    taken as its context grows (``reserve``) and given back when it is released or
    re-encoded shorter (``fit``). Pages for every slot's whole window are reserved but not
    touched (the operating system backs only the pages in use with memory, and freed pages
    are reused first), so the resident size follows the tokens held, not the windows: at
    the peak of a 100,000-avatar expo the avatars inside hold 4 tokens on average of the 32
    their windows could (``bench/README.md``). ``slot[sequence]`` is a sequence's slot (-1:
    none), ``owner[slot]`` the slot's sequence (-1: free), ``lengths[slot]`` its valid
    tokens, ``table[slot]`` its pages; ``pages`` (torch) and ``past`` (NumPy) are the same
    memory. A slot's column without a page points at the last page, which is never taken
    and stays zero; positions past a sequence's length hold zeros or the finite numbers of
    an earlier owner, which attention masks."""

    def __init__(
        self,
        sequences: int,
        layers: int,
        heads: int,
        window: int,
        head_size: int,
        dtype: torch.dtype | None = None,
        page: int = PAGE_TOKENS,
    ) -> None:
        per_sequence = 4 * layers * 2 * heads * window * head_size
        if dtype is None:
            fits = sequences * per_sequence <= FLOAT32_CACHE_BYTES
            dtype = torch.float32 if fits else torch.float16
        self.window, self.page = window, page
        per_slot = -(-window // page)
        n_pages = sequences * per_slot
        # Pages third: a batch's pages are gathered (``np.take``) straight into the
        # (layers, 2, heads, batch, tokens, size) order its attention reads.
        shape = (layers, 2, heads, n_pages + 1, page, head_size)
        # np.zeros: zeroed by the operating system as it is first touched, not before.
        self.past = np.zeros(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
        self.pages = torch.from_numpy(self.past)  # the same memory, for PyTorch
        self.zero_page = n_pages
        self.table = np.full((sequences, per_slot), self.zero_page, dtype=np.int64)
        self.slot = np.full(sequences, -1, dtype=np.int64)
        self.owner = np.full(sequences, -1, dtype=np.int64)
        self.lengths = np.zeros(sequences, dtype=np.int64)
        self.free = np.arange(sequences - 1, -1, -1, dtype=np.int64)  # a stack: free on top
        self.n_free = sequences
        self.free_pages = np.arange(n_pages - 1, -1, -1, dtype=np.int64)  # a stack too
        self.n_free_pages = n_pages
        self.most_pages = 0  # the most pages in use at once: the cache's resident size

    def holds(self, sequences: np.ndarray) -> np.ndarray:
        """(B,) bool: the sequences that have a slot."""
        return self.slot[sequences] >= 0

    def take(self, sequences: np.ndarray) -> np.ndarray:
        """Give each of ``sequences`` (none holding a slot) a fresh, empty slot; returns the
        slots."""
        fresh = self.free[self.n_free - len(sequences) : self.n_free][::-1].copy()
        self.n_free -= len(sequences)
        self.slot[sequences] = fresh
        self.owner[fresh] = sequences
        self.lengths[fresh] = 0
        return fresh

    def release(self, sequences: np.ndarray) -> None:
        """The sequences (avatars heading out) give their slots and pages back, if they hold
        one."""
        sequences = sequences[self.slot[sequences] >= 0]
        if len(sequences) == 0:
            return
        freed = self.slot[sequences]
        self.fit(freed, np.zeros(len(freed), dtype=np.int64))
        self.free[self.n_free : self.n_free + len(freed)] = freed
        self.n_free += len(freed)
        self.owner[freed] = -1
        self.lengths[freed] = 0
        self.slot[sequences] = -1

    def _pop_pages(self, count: int) -> np.ndarray:
        fresh = self.free_pages[self.n_free_pages - count : self.n_free_pages][::-1].copy()
        self.n_free_pages -= count
        self.most_pages = max(self.most_pages, len(self.free_pages) - self.n_free_pages)
        return fresh

    @property
    def page_bytes(self) -> int:
        return self.past[:, :, :, 0].nbytes

    def fit(self, slots: np.ndarray, tokens: np.ndarray) -> None:
        """Give ``slots`` (B,) pages for ``tokens`` (B,) tokens each, no more: pages are
        taken or given back as needed."""
        needed = -(-tokens // self.page)
        held = self.table[slots] != self.zero_page  # (B, pages per slot)
        want = np.arange(self.table.shape[1]) < needed[:, None]
        give = held & ~want
        if give.any():
            freed = self.table[slots][give]
            self.free_pages[self.n_free_pages : self.n_free_pages + len(freed)] = freed
            self.n_free_pages += len(freed)
            rows, cols = np.nonzero(give)
            self.table[slots[rows], cols] = self.zero_page
        grow = want & ~held
        if grow.any():
            rows, cols = np.nonzero(grow)
            self.table[slots[rows], cols] = self._pop_pages(len(rows))

    def reserve(self, slots: np.ndarray) -> None:
        """A page for the next token of each of ``slots`` (B,), where it has none."""
        column = self.lengths[slots] // self.page
        short = np.flatnonzero(self.table[slots, column] == self.zero_page)
        if len(short):
            self.table[slots[short], column[short]] = self._pop_pages(len(short))

    def gather(self, slots: np.ndarray, width: int) -> np.ndarray:
        """The caches of ``slots`` (B,) as one float32 array (B, layers, 2, heads, W,
        head_size), W the ``width`` rounded up to whole pages."""
        n = -(-width // self.page)
        pages = np.take(self.past, self.table[slots, :n], axis=3)  # (L, 2, H, B, n, page, S)
        layers, two, heads, b, _, page, size = pages.shape
        pages = pages.reshape(layers, two, heads, b, n * page, size)
        if pages.dtype != np.float32:
            # PyTorch widens float16 with the CPU's conversion instructions, some four
            # times NumPy's ``astype`` (bench/README.md, issue 25).
            pages = torch.from_numpy(pages).float().numpy()
        return pages.transpose(3, 0, 1, 2, 4, 5)

    def refill(self, slots: np.ndarray, kv: np.ndarray) -> None:
        """Replace the contents of ``slots`` with ``kv`` (B, layers, 2, heads, T, size), T
        tokens from position 0."""
        tokens = kv.shape[4]
        self.fit(slots, np.full(len(slots), tokens))
        for column, start in enumerate(range(0, tokens, self.page)):
            part = kv[:, :, :, :, start : start + self.page].transpose(1, 2, 3, 0, 4, 5)
            self.past[:, :, :, self.table[slots, column], : part.shape[4]] = part
        self.lengths[slots] = tokens

    def append(self, slots: np.ndarray, kv: np.ndarray) -> None:
        """One token's ``kv`` (B, layers, 2, heads, size) at each slot's length (its page
        reserved), and the lengths one longer."""
        lengths = self.lengths[slots]
        page = self.table[slots, lengths // self.page]
        self.past[:, :, :, page, lengths % self.page] = kv.transpose(1, 2, 3, 0, 4)
        self.lengths[slots] = lengths + 1


def ragged_attention(
    qkv: np.ndarray,
    past: list[tuple[np.ndarray, np.ndarray]],
    layer: int,
    lengths: np.ndarray,
    out: list[np.ndarray],
) -> np.ndarray:
    """``cached_attention`` over a batch whose caches come in parts of one width each:
    ``past`` is (rows, cache of those rows) pairs, so that a short context is not padded to
    the batch's longest."""
    b, c = qkv.shape[0], qkv.shape[1] // 3
    mixed = np.empty((b, c), dtype=qkv.dtype)
    for rows, part in past:
        mixed[rows] = cached_attention(qkv[rows], part, layer, lengths[rows], [])
    out.append(qkv.reshape(b, 3, past[0][1].shape[3], -1)[:, 1:])
    return mixed


def option_table(
    options: np.ndarray, option_rows: np.ndarray | None, b: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (U, Z) distinct option-state rows and each of ``b`` deciders' row (B,), from
    (Z,) states shared by all or (U, Z) rows and ``option_rows``."""
    rows = np.zeros(b, dtype=np.int64) if option_rows is None else option_rows
    return np.atleast_2d(options), rows


def _tensor(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).cpu().clone()


def _array(t: torch.Tensor) -> np.ndarray:
    return _tensor(t).numpy()


class Decoder:
    """A GPT's live decoding: its cache of ``sequences`` slots of ``window`` tokens, and
    ``GPT.decode_step`` for the tokens of one venue state shared by the whole batch."""

    def __init__(
        self,
        model: GPT,
        sequences: int = 0,
        window: int | None = None,
        cache_dtype: torch.dtype | None = None,
    ) -> None:
        self.model = model
        c = model.config
        self.cache = ContextCache(
            sequences,
            c.n_layer,
            c.n_head,
            window or c.block_size,
            c.n_embd // c.n_head,
            cache_dtype,
        )
        self.copy_weights()

    @torch.no_grad()
    def copy_weights(self) -> None:
        """Take float32 NumPy copies of the model's weights as they are now."""
        model, c = self.model, self.model.config
        table, starts = model.token_table()
        self.token_table, self.starts = _array(table), starts.numpy().astype(np.int64)
        self.block_size, self.n_head = c.block_size, c.n_head
        self.venue_table = _array(model.venue_state.weight).reshape(c.n_zones, c.n_options, -1)
        # Each option state as the model scores and views it, and its wait level apart
        # (``GPT.split_options``), for a model that costs waits apart.
        self.wait_apart = bool(c.wait_apart)
        if self.wait_apart:
            states = torch.arange(N_OPTION_STATES)
            scored, waits = model.split_options(states)
            self.scored_state, self.wait_of = scored.numpy(), waits.numpy()
            self.wait_costs = _array(model.wait_costs())
            self.wait_scale = (_array(model.wait_scale.weight)[0], float(model.wait_scale.bias))
        self.zones = np.arange(c.n_zones)
        # Each candidate's queue gap is scored against the hidden state (``GPT.queue_gaps``).
        self.gap_table = _array(model.gap_state.weight) if c.queue_gap else None
        # Each block's weights by role (``llm.model.block_step``): layer norms as float32
        # tensors (one fused PyTorch call), linear maps as (input, output) arrays.
        self.blocks = [
            {
                role: (_tensor(m.weight), _tensor(m.bias))
                if isinstance(m, torch.nn.LayerNorm)
                else (_array(m.weight).T.copy(), _array(m.bias))
                for role, m in b.roles.items()
            }
            for b in model.blocks
        ]
        self.ln_f = (_tensor(model.ln_f.weight), _tensor(model.ln_f.bias))
        self.zone_table = _array(model.zone_table())
        self.move_prior = _array(model.move_prior)
        self.option_table = _array(model.option_state.weight)
        self.dwell_weight = _array(model.dwell_head.weight).T.copy()
        self.dwell_bias = _array(model.dwell_head.bias)
        self.n_zones = c.n_zones
        self.seen_gain = _array(model.seen_gain)[model.zone_kind.numpy()]
        if c.n_show_states:
            self.show_table = _array(model.show_state.weight)
        if c.n_show_states and c.show_view:
            view = _array(model.programme_state.weight).reshape(c.n_zones, c.n_show_states, -1)
            # Most zones show no show: their "none" vectors summed once, the others' moves
            # from "none" added per decider (``programme_view``).
            self.programme_none = view[:, 0].sum(axis=0)
            self.programme_moves = view - view[:, :1]
        if c.n_profile:
            self.profile_table = _array(model.profile_emb.weight)
            self.interest_gain = _array(model.interest_gain)[model.zone_kind.numpy()]

    # ------------------------------------------------------------------ with the cache
    def step(
        self,
        slots: np.ndarray,
        tokens: np.ndarray,
        options: np.ndarray,
        profile: np.ndarray | None = None,
        seen: np.ndarray | None = None,
        shows: np.ndarray | None = None,
        option_rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One new token in each of ``slots`` (B,): ``tokens`` (B, features) in
        ``FEATURES`` order, ``options`` every zone's option states (see ``numpy_step``),
        and the rest as ``numpy_step`` takes them. Its keys and values are added to the
        slot; returns the zone logits (B, Z) and hidden states (B, C)."""
        lengths = self.cache.lengths[slots]
        self.cache.reserve(slots)
        pages = lengths // self.cache.page + 1  # the pages each token attends over
        past = [
            (rows, self.cache.gather(slots[rows], int(n) * self.cache.page))
            for n in np.unique(pages)
            for rows in [np.flatnonzero(pages == n)]
        ]
        with one_thread():
            logits, hidden, new_kv = self.numpy_step(
                tokens, options, past, lengths, profile, seen, shows, option_rows
            )
        self.cache.append(slots, new_kv)
        return logits, hidden

    @torch.no_grad()
    def reencode(
        self, slots: np.ndarray, tokens: dict[str, torch.Tensor], options: torch.Tensor
    ) -> None:
        """Replace the contents of ``slots`` (b,) with the keys and values of ``tokens``
        (each (b, T), as ``GPT.forward`` takes them, ``options`` (b, T, Z)), from position
        0: one forward pass."""
        with one_thread():
            past = self.model(tokens, options, mask_illegal=False).past
        kv = torch.stack([torch.stack(layer, 1) for layer in past], 1)  # (b, L, 2, H, T, S)
        self.cache.refill(slots, kv.numpy())

    def dwell_logits(
        self, hidden: np.ndarray, next_zone: np.ndarray, next_show: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, dwell buckets) for the stay at ``next_zone`` (B,), as ``GPT.dwell_logits``."""
        with one_thread():
            x = hidden + self.zone_table[next_zone]
            if next_show is not None and self.model.config.n_show_states:
                x = x + self.show_table[next_show]
            return x @ self.dwell_weight + self.dwell_bias

    # ------------------------------------------------------------------ one step
    def torch_step(
        self,
        tokens: np.ndarray,
        options: np.ndarray,
        past: np.ndarray,
        lengths: np.ndarray,
        profile: np.ndarray | None = None,
        seen: np.ndarray | None = None,
        shows: np.ndarray | None = None,
        option_rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``numpy_step`` by PyTorch's ``GPT.decode_step``: the reference the NumPy step is
        held to (tests, ``bench/bench_agents.py``)."""
        b = len(lengths)
        table, row = option_table(options, option_rows, b)
        feed = {f: torch.from_numpy(tokens[:, i]) for i, f in enumerate(FEATURES)}
        if profile is not None:
            feed["profile"] = torch.from_numpy(profile)
        if seen is not None:
            feed["seen"] = torch.from_numpy(seen)
        if shows is not None:
            feed["shows"] = torch.from_numpy(shows)
        with torch.no_grad():
            logits, hidden, new_kv, _ = self.model.decode_step(
                feed,
                torch.from_numpy(table[row]),
                torch.from_numpy(past),
                torch.from_numpy(lengths),
            )
        return logits.numpy(), hidden.numpy(), new_kv.numpy()

    def programme_view(self, shows: np.ndarray) -> np.ndarray:
        """(B, Z) show states -> (B, C), as ``GPT.programme_view``: the "none" vectors of
        every zone, plus each zone's move away from "none" where it shows a show."""
        out = np.broadcast_to(self.programme_none, (len(shows), len(self.programme_none))).copy()
        rows, zones = np.nonzero(shows)
        if len(rows):
            moves = self.programme_moves[zones, shows[rows, zones]]
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            out[rows[starts]] += np.add.reduceat(moves, starts, axis=0)
        return out

    def numpy_step(
        self,
        tokens: np.ndarray,
        options: np.ndarray,
        past: np.ndarray | list[tuple[np.ndarray, np.ndarray]],
        lengths: np.ndarray,
        profile: np.ndarray | None = None,
        seen: np.ndarray | None = None,
        shows: np.ndarray | None = None,
        option_rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``tokens`` (B, features) in ``FEATURES`` order; ``options`` the option state of
        every zone: (Z,) the same for the whole batch, or (U, Z) rows of which each decider
        has row ``option_rows`` (B,) (decisions of one step see their own queue waits, few
        rows apart); ``past`` (B, layers, 2, heads, W, size)
        float32, valid below ``lengths`` (B,), written at position ``lengths`` (or, as
        ``Decoder.step`` gives it, (rows, cache of those rows) parts of one width each, for
        ``ragged_attention``). Returns the
        zone logits (B, Z), the hidden states (B, C) and the new token's keys and values
        (B, layers, 2, heads, size), as ``GPT.decode_step`` does. ``profile`` (B, n_profile):
        the deciders' declared profiles, for a model that takes them; ``seen`` (B, Z) the
        places in each decider's context (default: its new token's zone only); ``shows``
        (B, Z) every zone's show state, for a model that takes the programme."""
        b = len(lengths)
        rows = np.arange(b)
        positions = np.minimum(lengths, self.block_size - 1)
        ids = np.concatenate([tokens, positions[:, None]], axis=1) + self.starts
        x = self.token_table[ids].sum(axis=1)
        table, row = option_table(options, option_rows, b)
        waits = gaps = None
        if self.gap_table is not None:
            gaps = self.model.queue_gaps(torch.from_numpy(table)).numpy()
        if self.wait_apart:
            table, waits = self.scored_state[table], self.wait_of[table]
        x += self.venue_table[self.zones[None, :], table].sum(axis=1)[row]
        declared = None
        if profile is not None and self.model.config.n_profile:
            declared = profile.astype(np.float32)
            count = np.maximum(declared.sum(axis=1, keepdims=True), 1.0)
            x += (declared @ self.profile_table) / count
        if shows is not None and self.model.config.show_view:
            x += self.programme_view(shows)
        new_kv: list[np.ndarray] = []
        attention = cached_attention if isinstance(past, np.ndarray) else ragged_attention
        for layer, block in enumerate(self.blocks):
            attend = partial(attention, past=past, layer=layer, lengths=lengths, out=new_kv)
            x = block_step(x, block, attend, NUMPY_OPS)
        hidden = NUMPY_OPS.norm(x, self.ln_f)
        by_option = hidden @ self.option_table.T
        if len(table) == 1:
            logits = hidden @ self.zone_table.T + by_option[:, table[0]]
        else:
            logits = hidden @ self.zone_table.T + np.take_along_axis(by_option, table[row], 1)
        if waits is not None:
            weight, bias = self.wait_scale
            scale = np.logaddexp(0.0, hidden @ weight + bias).astype(np.float32)  # softplus
            logits -= scale[:, None] * self.wait_costs[self.zones[None, :], waits][row]
        if gaps is not None:
            logits += np.take_along_axis(hidden @ self.gap_table.T, gaps[row], 1)
        logits += self.move_prior[tokens[:, 0]]  # FEATURES[0] is the zone
        if declared is not None:
            logits += declared[:, : self.n_zones] * self.interest_gain
        if shows is not None and self.model.config.n_show_states:
            logits += np.take_along_axis(hidden @ self.show_table.T, shows.astype(np.int64), 1)
        if seen is None:
            logits[rows, tokens[:, 0]] += self.seen_gain[tokens[:, 0]]
        else:
            logits += seen * self.seen_gain
        return logits, hidden, np.stack(new_kv, axis=1)
