"""Periodic sweeps that work through a backlog a chunk (one transaction) at a time."""

from collections.abc import Callable


def drain(take_chunk: Callable[[int], int], size: int) -> int:
    """Call `take_chunk(size)` until it takes fewer than `size` rows; how many it took in all."""
    total = 0
    while True:
        taken = take_chunk(size)
        total += taken
        if taken < size:
            return total
