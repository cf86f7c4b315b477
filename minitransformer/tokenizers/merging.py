"""The step BPE repeats: find the most frequent adjacent pair of ids and replace it by a new id.

`merge` is the step itself, used by both training and encoding. `PairCounts` is the bookkeeping that makes
training fast: instead of recounting every pair of the whole text after each merge (notebook 06's loop by hand),
it keeps each distinct chunk once with its count and, after a merge, recounts only the chunks that held the
merged pair. `merge_by_rank` is encoding's fast path for long chunks: the same result as the readable loop in
`BPETokenizer._encode_chunk`, in O(n log n) instead of O(n²).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

Pair = tuple[int, int]


def merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace each occurrence of `pair` in `ids`, left to right, by `new_id`.

    merge([1, 2, 3, 1, 2], (1, 2), 256) -> [256, 3, 256];  merge([5, 5, 5], (5, 5), 256) -> [256, 5]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class PairCounts:
    """How often each adjacent pair of ids occurs in a text, kept up to date while pairs are merged.

    chunk_counts: {chunk bytes: how often the chunk occurs}. A pair's count is the sum of the counts of the
    chunks it occurs in, once per occurrence; `where` remembers which chunks those are.
    """

    def __init__(self, chunk_counts: dict[bytes, int]):
        self.chunks = [list(chunk) for chunk in chunk_counts]  # each distinct chunk as ids, bytes at first
        self.freqs = list(chunk_counts.values())
        self.counts: Counter[Pair] = Counter()
        self.where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of chunks holding it
        for c, chunk in enumerate(self.chunks):
            self._add(c, chunk)

    def __bool__(self) -> bool:
        """False once every chunk is a single token: nothing is left to merge."""
        return bool(self.counts)

    def most_frequent(self) -> Pair:
        # Ties go to the smallest pair, so the result does not depend on dict order.
        return max(self.counts, key=lambda p: (self.counts[p], -p[0], -p[1]))

    def merge(self, pair: Pair, new_id: int) -> None:
        """Replace `pair` by `new_id` in every chunk that holds it, and swap those chunks' pairs in the counts."""
        for c in self.where.pop(pair):
            chunk, merged = self.chunks[c], merge(self.chunks[c], pair, new_id)
            if len(merged) == len(chunk):
                continue  # a stale entry: an earlier merge already removed `pair` from this chunk
            self._remove(c, chunk)
            self._add(c, merged)
            self.chunks[c] = merged

    def _add(self, c: int, chunk: list[int]) -> None:
        for pair in zip(chunk, chunk[1:]):
            self.counts[pair] += self.freqs[c]
            self.where[pair].add(c)

    def _remove(self, c: int, chunk: list[int]) -> None:
        for pair in zip(chunk, chunk[1:]):
            self.counts[pair] -= self.freqs[c]
            if self.counts[pair] == 0:
                del self.counts[pair]


def merge_by_rank(ids: list[int], ranks: dict[Pair, int]) -> list[int]:
    """Merge the earliest-learned pair until none is left, like `BPETokenizer._encode_chunk`, in O(n log n).

    ranks: {pair: k}, where merge k creates id 256 + k. The tokens form a linked list, so that a merge removes
    one in O(1), and a heap holds each adjacent pair that has a rank, keyed by (rank, position): it pops the
    earliest-learned pair, leftmost first, which is the order of the reference loop (a merge only creates
    pairs of a later rank). A popped pair that a merge has since changed is skipped.
    """
    n = len(ids)
    ids = list(ids)  # ids[i] = -1 once token i is merged into its left neighbour
    after = list(range(1, n + 1))  # the next live token; n = none
    before = list(range(-1, n - 1))  # the previous live token; -1 = none
    heap = [rank * n + i for i, rank in enumerate(map(ranks.get, zip(ids, ids[1:]))) if rank is not None]
    heapq.heapify(heap)  # key rank * n + i sorts as (rank, i), and ints compare faster than tuples
    while heap:
        rank, i = divmod(heapq.heappop(heap), n)
        j = after[i]
        if j == n or ranks.get((ids[i], ids[j])) != rank:
            continue  # a stale entry: token i or its neighbour has changed since it was pushed
        ids[i], ids[j] = 256 + rank, -1
        after[i] = k = after[j]
        if k < n:
            before[k] = i
        for left in (before[i], i):  # the two pairs the new token is part of
            right = after[left] if left >= 0 else n
            new_rank = ranks.get((ids[left], ids[right])) if right < n else None
            if new_rank is not None:
                heapq.heappush(heap, new_rank * n + left)
    out, i = [], 0
    while i < n:
        out.append(ids[i])
        i = after[i]
    return out
