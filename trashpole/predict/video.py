"""
The frame loop that ``predict_paths`` (a video's overlaid copy) and ``track_paths`` (a tracked
sequence) share: frames predicted ahead in threads and handed back in their order with a
progress bar (:func:`predicted_frames`), and the overlays written to an MP4 that opens at the
first frame, when its size is known (:class:`OverlayVideo`).
"""

from typing import Iterable, Iterator, Optional, Sequence, Tuple, TypeVar

import cv2
import numpy as np
from detectron2.structures import Instances
from tqdm import tqdm

from trashpole.predict.pipeline import in_order, pipelined

# a tuple whose second element is the BGR frame, e.g. (index, frame, fps)
FrameItem = TypeVar("FrameItem", bound=Sequence)


def predicted_frames(
    predictor, frames: Iterable[FrameItem], desc: str, total: Optional[int] = None
) -> Iterator[Tuple[FrameItem, Instances]]:
    """
    ``(item, instances on the CPU)`` for each frame item, in the items' order; the frames are
    predicted ahead by :func:`trashpole.predict.pipeline.in_order` (as many at once as the
    backend allows, :func:`~trashpole.predict.pipeline.pipelined`) while a progress bar counts
    them.

    Args:
        predictor: a :class:`trashpole.predict.TrashPolePredictor` (or any callable that maps a
            BGR image to ``{"instances": Instances}``).
        frames: tuples whose element 1 is the frame, ndarray[H, W, 3] of uint8 BGR; consumed
            lazily.
        desc: the progress bar's label.
        total: frames expected, for the progress bar (None: unknown).
    """
    flying, workers = pipelined(predictor)
    predicted = in_order(lambda item: flying(item[1])["instances"].to("cpu"), frames, workers)
    return tqdm(predicted, total=total, desc=desc, unit="frame", dynamic_ncols=True)


class OverlayVideo:
    """
    An MP4 (``mp4v``) written frame by frame; the file is created at the first frame, with that
    frame's size and the given frame rate, so a video with no frames leaves no file. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, path: str):
        self.path = path
        self._writer: Optional[cv2.VideoWriter] = None

    def write(self, frame: np.ndarray, fps: float) -> None:
        """Append ``frame`` (ndarray[H, W, 3] of uint8 BGR); ``fps`` counts at the first one."""
        if self._writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(self.path, fourcc, fps, (w, h))
        self._writer.write(frame)

    def close(self) -> None:
        """Finish the file (nothing to do when no frame came)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "OverlayVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
