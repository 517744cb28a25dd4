"""Many request threads at once against one served model, as a busy runtime sees them."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List


def hammer(call: Callable[[int], Any], requests: int = 64, threads: int = 16) -> List[Any]:
    """Run `call(i)` for i in range(requests) from `threads` threads that start together.

    Returns each call's result, or the exception it raised, in request order: the caller
    asserts that none failed and that every answer equals what a lone call gives.
    """
    start = threading.Barrier(threads)

    def first_waits_for_all(index: int):
        if index < threads:
            start.wait(timeout=60)
        try:
            return call(index)
        except Exception as err:  # pylint: disable=broad-exception-caught
            return err

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(first_waits_for_all, range(requests)))


def failures(results: List[Any]) -> List[str]:
    """The failed calls among `results`, described for an assertion message."""
    return [f"request {index}: {result!r:.300}" for index, result in enumerate(results) if isinstance(result, Exception)]
