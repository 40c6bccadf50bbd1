"""
The colours of every picture trashpole draws.

Every drawing takes its class colours from :data:`CLASS_COLORS`: the data overlays and
``labels.png`` (through the ``thing_colors`` that registration puts in the metadata), the
prediction overlays, the galleries of ``report.md``, the pictures of ``report.html`` and the
positions plot, so a class has one colour everywhere. Tracks (one colour per track ID) take
:func:`track_color`.
"""

from typing import List, Tuple

import numpy as np
from detectron2.utils.colormap import colormap

# Class colours (RGB, 0-255) by contiguous class id, cycling: Okabe and Ito's palette, which stays
# distinct for the common kinds of colour blindness.
CLASS_COLORS: List[Tuple[int, int, int]] = [
    (230, 159, 0),
    (0, 114, 178),
    (0, 158, 115),
    (204, 121, 167),
    (213, 94, 0),
]


def class_colors(num_classes: int) -> List[Tuple[int, int, int]]:
    """The RGB colour of each of ``num_classes`` classes, by contiguous id."""
    return [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(num_classes)]


_PALETTE = colormap(rgb=True, maximum=1)


def track_color(track_id: int) -> np.ndarray:
    """The colour of a track (RGB in 0-1): fixed for an ID, far apart for neighbouring IDs."""
    return _PALETTE[(int(track_id) * 7) % len(_PALETTE)]
