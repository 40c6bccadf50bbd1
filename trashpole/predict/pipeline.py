"""
Folders and videos at the engine's speed: while one image is predicted, the next ones are read
and decoded and the previous one is drawn and written.

:func:`in_order` runs a function on a stream of items in a small pool of threads and yields the
results in the stream's order, so that whatever consumes them (overlays, JSON, the tracker) sees
exactly the sequence a plain loop would: tracks and counts are identical to the sequential run.
The OpenVINO backend releases the GIL while it infers and gives each image in flight its own
infer request (:class:`trashpole.predict.openvino.CompiledStage`); with
``TRASHPOLE.INFERENCE.STREAMS`` the images in flight run on a copy of the model compiled for that
many streams (:func:`streamed_copy`). The PyTorch backend already spreads one image over the
cores, so it runs one image at a time (:func:`workers_for`).
"""

import collections
import concurrent.futures
import logging
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def workers_for(predictor) -> int:
    """Images predicted at once: ``TRASHPOLE.INFERENCE.WORKERS`` on OpenVINO, 1 on PyTorch."""
    return backend_workers(getattr(predictor, "backend", ""), getattr(predictor, "cfg", None))


def pipelined(predictor, count: Optional[int] = None) -> Tuple[Any, int]:
    """
    (what the pipeline's threads call, images in flight): on OpenVINO the predictor's copy for
    that many images at once (:meth:`trashpole.predict.TrashPolePredictor.in_flight`), else
    the predictor itself, one image at a time. ``count``: the images to come, when known (a
    single photo runs on the predictor itself, with no copy to compile).
    """
    workers = workers_for(predictor) if count is None or count > 1 else 1
    in_flight = getattr(predictor, "in_flight", None)
    return (in_flight(workers) if in_flight is not None else predictor), workers


def backend_workers(description: str, cfg) -> int:
    """
    Images in flight at once on a backend described by ``description`` (e.g. ``"openvino
    bf16"``): ``TRASHPOLE.INFERENCE.WORKERS`` of ``cfg`` on OpenVINO, 1 on PyTorch or any other
    callable (PyTorch already spreads one image over the cores).
    """
    if not description.startswith("openvino"):
        return 1
    return max(1, int(cfg.TRASHPOLE.INFERENCE.WORKERS))


def stream_count(model, cfg, workers: int) -> int:
    """
    Streams to compile ``model`` for when ``workers`` images are in flight at once: ``workers``
    on a model that can be compiled for streams (OpenVINO's ``with_streams``) with
    ``TRASHPOLE.INFERENCE.STREAMS`` on, 1 (the model itself) otherwise.
    """
    if workers < 2 or not hasattr(model, "with_streams"):
        return 1
    return workers if cfg.TRASHPOLE.INFERENCE.STREAMS else 1


def streamed_copy(model, streams: int, what: str):
    """
    ``model`` (an :class:`trashpole.predict.openvino.OpenVINOModel`) compiled again for
    ``streams`` images in flight at once (OpenVINO's throughput mode: each inference on its share
    of the cores), with a log line naming ``what`` is in flight ("images", "slices"). One image
    alone runs slower on the copy than on the model, which gives it every core; images in flight
    together run faster (docs/performance.md, docs/slicing.md). Callers keep the copy.
    """
    logger.info(f"Compiling the OpenVINO model for {streams} {what} at once")
    return model.with_streams(streams)


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
