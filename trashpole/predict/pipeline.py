"""
Folders and videos at the engine's speed: while one image is predicted, the next ones are read
and decoded and the previous one is drawn and written.

:func:`in_order` runs a function on a stream of items in a small pool of threads and yields the
results in the stream's order, so that whatever consumes them (overlays, JSON, the tracker) sees
exactly the sequence a plain loop would: tracks and counts are identical to the sequential run.
The OpenVINO backend releases the GIL while it infers and gives each image in flight its own
infer request (:class:`trashpole.predict.openvino.CompiledStage`); the PyTorch backend already
spreads one image over the cores, so it runs one image at a time (:func:`workers_for`).
"""

import collections
import concurrent.futures
from typing import Callable, Iterable, Iterator, Tuple, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def workers_for(predictor) -> int:
    """Images predicted at once: ``TRASHPOLE.INFERENCE.WORKERS`` on OpenVINO, 1 on PyTorch."""
    return backend_workers(getattr(predictor, "backend", ""), getattr(predictor, "cfg", None))


def backend_workers(description: str, cfg) -> int:
    """
    Images in flight at once on a backend described by ``description`` (e.g. ``"openvino
    bf16"``): ``TRASHPOLE.INFERENCE.WORKERS`` of ``cfg`` on OpenVINO, 1 on PyTorch or any other
    callable (PyTorch already spreads one image over the cores).
    """
    if not description.startswith("openvino"):
        return 1
    return max(1, int(cfg.TRASHPOLE.INFERENCE.WORKERS))


def in_order(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int = 2, ahead: int = 0
) -> Iterator[Tuple[Item, Result]]:
    """
    ``(item, function(item))`` for each item, in the items' order, computed by ``workers``
    threads with up to ``ahead`` items in flight (default ``2 * workers``). The items are drawn
    from ``items`` by the calling thread (a video is decoded there while the pool predicts).
    With ``workers`` 1 and ``ahead`` 1 it is a plain loop. An exception in ``function`` is
    raised when its item's turn comes.

    Args:
        function: what to run on each item (e.g. read an image and predict it).
        items: an iterable, consumed lazily.
        workers: threads.
        ahead: items submitted before the oldest result is waited for.
    """
    if workers <= 1 and ahead <= 1:
        for item in items:
            yield item, function(item)
        return
    ahead = max(1, ahead or 2 * workers)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="predict") as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) >= ahead:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            for _, future in pending:  # a consumer that stops early: drop what is queued
                future.cancel()
