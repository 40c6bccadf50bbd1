"""What to predict on: image files, folders, globs and videos."""

import glob
import os
from typing import Iterator, List, Tuple

import cv2
import numpy as np

from trashpole.errors import MissingFileError, UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def find_inputs(spec: str) -> Tuple[List[str], List[str]]:
    """
    Expand an input spec (a file, a folder or a glob) into (images, videos), sorted.
    """
    if os.path.isdir(spec):
        paths = [os.path.join(spec, n) for n in os.listdir(spec)]
    elif os.path.isfile(spec):
        paths = [spec]
    else:
        paths = glob.glob(spec, recursive=True)
    paths = sorted(p for p in paths if os.path.isfile(p))
    images = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
    videos = [p for p in paths if p.lower().endswith(VIDEO_EXTENSIONS)]
    if not images and not videos:
        raise MissingFileError(
            f"no image ({', '.join(IMAGE_EXTENSIONS)}) or video ({', '.join(VIDEO_EXTENSIONS)}) "
            f"found at {spec!r}"
        )
    return images, videos


def iter_video_frames(path: str) -> Iterator[Tuple[int, np.ndarray, float]]:
    """Yield (index, BGR frame, fps) of a video file."""

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open the video; check that the file is a complete video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield index, frame, fps
            index += 1
    finally:
        cap.release()
