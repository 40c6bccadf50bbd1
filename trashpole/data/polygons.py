"""Polygon helpers of the augmentations: clipping to a window and area, without shapely."""

import numpy as np


def clip_polygon(polygon: np.ndarray, width: float, height: float) -> np.ndarray:
    """
    Clip a polygon to the window [0, width] x [0, height] (Sutherland-Hodgman; exact for any
    simple polygon, convex or not, since the window is convex; a concave polygon cut in two keeps
    the two parts joined by zero-area edges along the border).

    Args:
        polygon: ndarray[K, 2] of (x, y).
        width, height: the window.

    Returns:
        ndarray[M, 2] of (x, y); M < 3 when nothing of the polygon is inside.
    """
    points = [tuple(p) for p in np.asarray(polygon, dtype=np.float64).reshape(-1, 2)]
    # each edge: (axis, limit, keep points with coord >= limit?)
    for axis, limit, keep_above in ((0, 0.0, True), (0, width, False), (1, 0.0, True)) + (
        (1, height, False),
    ):
        inside = (lambda p: p[axis] >= limit) if keep_above else (lambda p: p[axis] <= limit)
        out = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if inside(cur) != inside(prev):
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[k] + t * (cur[k] - prev[k]) for k in range(2)))
            if inside(cur):
                out.append(cur)
        points = out
        if not points:
            break
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def polygon_area(polygon: np.ndarray) -> float:
    """Area of a polygon (shoelace), ndarray[K, 2] or flat [x0, y0, x1, ...]."""
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
