"""A synthetic stand-in for the campus photos, written in Roboflow's COCO export layout.

The real photographs are not available, so the project ships this generator as its default data set.
It draws street and campus scenes and writes them exactly as Roboflow's "COCO Segmentation" export
would: ``OUT/{train,valid,test}/_annotations.coco.json`` with the JPEGs beside each file, category 0
a dataset-level superclass, and image/annotation ids counted from 0 in every split.

Every scene is drawn through a pinhole camera looking along a flat ground plane (X to the right,
Y up, Z forward, in metres), so objects lower in the picture are nearer and bigger, ground textures
converge on the vanishing point and shadows fall consistently from one sun. Objects are painted far
to near into an ownership map, which gives each instance's *visible* mask for free: a bin in front
of a pole, a bush or car in the foreground, all cut the masks of what lies behind them.

Example::

    python -m trashpole.data.synthetic --out datasets/trashpole_synth --num-images 200 --seed 0
"""

import argparse
import datetime
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from trashpole.jsonio import write_json

logger = logging.getLogger(__name__)

CATEGORIES = [
    {"id": 0, "name": "trash-poles", "supercategory": "none"},
    {"id": 1, "name": "pole", "supercategory": "trash-poles"},
    {"id": 2, "name": "trash-can", "supercategory": "trash-poles"},
]
CLASS_NAMES = ["pole", "trash-can"]
POLE, TRASH_CAN = 1, 2  # Roboflow category ids
SPLITS = ("train", "valid", "test")
ANNOTATION_FILE = "_annotations.coco.json"
MIN_AREA = 60  # smallest visible instance kept, in px at 640x640 (scaled with the image area)
EMPTY_PROB = 0.03  # share of scenes without any pole or trash can, as real exports have

Color = Tuple[float, float, float]  # BGR, 0-255
Shade = Callable[[np.ndarray], np.ndarray]  # column centres (px) -> brightness factors

_POLE_COLORS: Dict[str, Color] = {
    "grey": (128, 128, 124),
    "green": (60, 88, 46),
    "black": (42, 42, 44),
    "galvanised": (170, 172, 168),
    "darkgrey": (80, 78, 74),
    "blue": (96, 66, 44),
}
_BIN_COLORS: Dict[str, Color] = {
    "green": (52, 122, 46),
    "darkgreen": (42, 78, 36),
    "black": (40, 40, 42),
    "grey": (122, 122, 118),
    "blue": (150, 88, 36),
    "orange": (32, 112, 222),
    "red": (46, 46, 172),
    "brown": (46, 72, 108),
    "yellow": (40, 182, 216),
    "silver": (166, 168, 170),
}
_FACADE_COLORS: List[Color] = [
    (60, 78, 142),  # brick
    (150, 178, 198),  # sand
    (152, 152, 148),  # concrete
    (212, 214, 210),  # white render
    (92, 92, 96),  # dark cladding
    (162, 186, 170),  # pastel green
    (120, 140, 175),  # ochre
]
_WHITE: Color = (235, 235, 235)
_INK: Color = (28, 28, 30)
_LAMP_GLOW: Color = (200, 235, 245)
_SIGN_RED: Color = (40, 40, 200)
_SIGN_BLUE: Color = (160, 90, 30)
_BAND_PAINT: Dict[str, Color] = {
    "white": (225, 225, 225),
    "red": (40, 40, 190),
    "yellow": (40, 190, 230),
}
_CAR_COLORS: List[Color] = [
    (225, 225, 222),
    (170, 170, 168),
    (40, 40, 42),
    (40, 40, 160),
    (130, 70, 30),
    (90, 90, 92),
]


# --------------------------------------------------------------------------------------------
# Camera, light and the canvas everything is painted on
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Camera:
    """A level pinhole camera ``height`` metres above flat ground; image rows grow downwards."""

    size: int
    horizon: float  # image row of the horizon, px
    vp_x: float  # image column of the vanishing point, px
    focal: float  # px
    height: float  # m

    def project(self, X, Y, Z) -> Tuple[np.ndarray, np.ndarray]:
        """Image (x, y) of world points (X, Y, Z); Z must be positive."""
        X, Y, Z = (np.asarray(v, np.float64) for v in (X, Y, Z))
        return self.vp_x + self.focal * X / Z, self.horizon + self.focal * (self.height - Y) / Z

    def points(self, xyz: Sequence[Sequence[float]]) -> np.ndarray:
        """Projects world points of shape [N, 3] to an ndarray[N, 2] of image (x, y)."""
        a = np.asarray(xyz, np.float64)
        x, y = self.project(a[:, 0], a[:, 1], a[:, 2])
        return np.stack([x, y], axis=1)

    def depth_at_row(self, y: float) -> float:
        """Depth Z (m) of the ground seen at image row ``y`` (below the horizon)."""
        return self.focal * self.height / (y - self.horizon)


@dataclass(frozen=True)
class _Light:
    """One sun plus sky light: ``sun`` is a unit vector towards the sun (X, Y, Z)."""

    sun: Tuple[float, float, float]
    ambient: float
    diffuse: float
    shadow: float  # darkening of the ground in full shadow, 0..1

    def face(self, normal: Sequence[float]) -> float:
        """Brightness factor of a flat face with the given outward normal."""
        return self.ambient + self.diffuse * max(0.0, float(np.dot(normal, self.sun)))

    def shadow_step(self) -> Tuple[float, float]:
        """Ground displacement (dX, dZ) of a shadow per metre of height."""
        sx, sy, sz = self.sun
        return -sx / sy, -sz / sy


def _cylinder_shade(x_left: float, x_right: float, light: _Light) -> Shade:
    """Lambert shading across a vertical cylinder spanning columns [x_left, x_right]."""
    sx, _, sz = light.sun

    def shade(cols: np.ndarray) -> np.ndarray:
        u = np.clip((cols - x_left) / max(x_right - x_left, 1e-3) * 2.0 - 1.0, -1.0, 1.0)
        lambert = np.clip(u * sx - np.sqrt(1.0 - u * u) * sz, 0.0, 1.0)
        return light.ambient * (1.0 - 0.25 * u * u) + light.diffuse * lambert + 0.25 * lambert**16

    return shade


def _rasterize(pts: np.ndarray, size: int) -> Optional[Tuple[slice, slice, np.ndarray]]:
    """Fills a polygon given in image coordinates, clipped to the image.

    Args:
        pts: ndarray[N, 2] of (x, y) vertices, px (sub-pixel precision is kept).
        size: side of the square image, px.

    Returns:
        (rows, cols, mask) where mask is an ndarray[h, w] of bool for image[rows, cols], or None if
        the polygon misses the image.
    """
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = np.round((pts - (x0, y0)) * 8.0).astype(np.int32)  # 3 fractional bits
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=3)
    return slice(y0, y1), slice(x0, x1), mask.astype(bool)


class _Canvas:
    """A float BGR image plus an ownership map: which instance painted each pixel last.

    Scenery paints owner -1, so anything drawn in front of an instance removes those pixels from
    its visible mask; ``silhouettes`` keeps every instance's full, unoccluded shape.
    """

    def __init__(self, size: int):
        self.size = size
        self.image = np.zeros((size, size, 3), np.float32)
        self.owner = np.full((size, size), -1, np.int16)
        self.silhouettes: Dict[int, np.ndarray] = {}

    def fill(self, pts: np.ndarray, color: Color, owner: int = -1, shade: Shade = None) -> None:
        """Paints polygon ``pts`` (ndarray[N, 2], image x, y) in ``color``, optionally shaded."""
        hit = _rasterize(pts, self.size)
        if hit is None:
            return
        rows, cols, mask = hit
        if not mask.any():
            return
        color = np.asarray(color, np.float32)
        region = self.image[rows, cols]
        if shade is None:
            region[mask] = color
        else:
            centres = np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5
            factor = shade(centres).astype(np.float32)
            shaded = np.broadcast_to(factor[None, :, None] * color, region.shape)
            region[mask] = shaded[mask]
        self.owner[rows, cols][mask] = owner
        if owner >= 0:
            full = self.silhouettes.setdefault(owner, np.zeros(self.owner.shape, bool))
            full[rows, cols] |= mask


def _ellipse(cx: float, cy: float, a: float, b: float, t0=0.0, t1=2 * np.pi, n=28) -> np.ndarray:
    """Points (ndarray[n, 2]) on an axis-aligned ellipse from angle t0 to t1 (y grows downwards)."""
    t = np.linspace(t0, t1, n)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def _upright(xc: float, y_bot: float, y_top: float, w_bot: float, w_top: float, b_bot: float):
    """Silhouette of an upright (tapered) cylinder whose bottom rim is an ellipse of half-height
    ``b_bot``; returns ndarray[N, 2]."""
    bottom = _ellipse(xc, y_bot, w_bot / 2, b_bot, 0.0, np.pi, 12)  # right to left, lower half
    return np.vstack([[[xc - w_top / 2, y_top], [xc + w_top / 2, y_top]], bottom])


def _thick_line(points: np.ndarray, width: float) -> np.ndarray:
    """Polygon (ndarray[2N, 2]) of a polyline ``points`` (ndarray[N, 2]) drawn ``width`` px wide."""
    p = np.asarray(points, np.float64)
    d = np.gradient(p, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * (width / 2)
    return np.vstack([p + normal, (p - normal)[::-1]])


def _box_faces(cam: _Camera, x0, x1, y0, y1, z0, z1) -> List[Tuple[np.ndarray, Tuple]]:
    """Visible faces of an axis-aligned box as (polygon ndarray[4, 2], outward normal) pairs."""
    quads = [((0, 0, -1), [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)])]
    if cam.height > y1:  # below eye level: the top is seen from above
        quads.append(((0, 1, 0), [(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)]))
    if x0 > 0:  # right of the camera: the left side faces it
        quads.append(((-1, 0, 0), [(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)]))
    if x1 < 0:
        quads.append(((1, 0, 0), [(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)]))
    return [(cam.points(quad), normal) for normal, quad in quads]


def _fill_box(sc: "_Scene", box: Sequence[float], color: Color, owner: int) -> None:
    """Paints the visible faces of box (x0, x1, y0, y1, z0, z1) lit by the scene's sun."""
    for pts, normal in _box_faces(sc.cam, *box)[::-1]:  # sides and top first, front last
        sc.canvas.fill(pts, _scaled(color, sc.light.face(normal)), owner)


def _front_quad(cam: _Camera, x0, x1, y0, y1, z) -> np.ndarray:
    """Rectangle (x0..x1, y0..y1) on the plane at depth z, as an image polygon ndarray[4, 2]."""
    return cam.points([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])


def _side_quad(cam: _Camera, x, y0, y1, z0, z1) -> np.ndarray:
    """Rectangle (heights y0..y1, depths z0..z1) on the plane X = x, as an image polygon."""
    return cam.points([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """An axis-aligned rectangle in image coordinates, as a polygon ndarray[4, 2]."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _scaled(color: Color, factor: float) -> Color:
    return tuple(float(min(255.0, c * factor)) for c in color)


def _jitter(rng: np.random.Generator, color: Color, amount: float = 0.12) -> Color:
    """The colour with random brightness and slight hue variation."""
    gain = rng.uniform(1 - amount, 1 + amount)
    return tuple(float(np.clip(c * gain * rng.uniform(0.95, 1.05), 0, 255)) for c in color)


@dataclass
class _Layout:
    """Where things are on the ground (X ranges in metres)."""

    kind: str  # "street" or "campus"
    road: Optional[Tuple[float, float]] = None
    walks: List[Tuple[float, float]] = field(default_factory=list)  # sidewalks or paths
    plaza_depth: float = 0.0  # campus: paved up to this depth
    cross_path: Optional[Tuple[float, float]] = None  # campus: a path across, Z range
    far_depth: float = 60.0  # depth of the row of buildings at the back


@dataclass
class _Scene:
    rng: np.random.Generator
    canvas: _Canvas
    cam: _Camera
    light: _Light
    layout: _Layout
    weather: str
    min_px: float  # thinnest pole we draw, px


@dataclass
class _Thing:
    """One object in the world: an annotated pole or trash can, or scenery (category 0)."""

    kind: str
    category_id: int
    X: float  # centre, m
    Z: float  # depth of the front face, m
    width: float  # along X, m
    depth: float  # along Z, m
    height: float  # m
    style: dict

    def foot(self, cam: _Camera) -> Tuple[float, float]:
        x, y = cam.project(self.X, 0.0, self.Z)
        return float(x), float(y)

    def footprint(self) -> Tuple[float, float]:
        """(width, depth) in metres of what stands on the ground; a tree stands on its trunk."""
        if self.kind == "tree":
            return self.style["trunk_w"], self.depth
        return self.width, self.depth

    def box(self, cam: _Camera, min_px: float = 0.0) -> Tuple[float, float, float, float]:
        """Image box (x0, y0, x1, y1) of the object's core (a pole's shaft, a bin's body)."""
        x, y = self.foot(cam)
        k = cam.focal / self.Z
        half = max(self.width * k, min_px) / 2
        return x - half, y - self.height * k, x + half, y


# --------------------------------------------------------------------------------------------
# Background: sky, ground, buildings
# --------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cell: int) -> np.ndarray:
    """Low-frequency noise of the given shape, roughly N(0, 1), varying over ``cell`` px."""
    h, w = shape
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _paint_sky(sc: _Scene) -> None:
    rng, S = sc.rng, sc.canvas.size
    rows = min(S, int(np.ceil(sc.cam.horizon)) + 2)
    if sc.weather == "overcast":
        top, bottom = np.array([200, 196, 192]), np.array([226, 224, 222])
    elif sc.weather == "evening":
        top, bottom = np.array([170, 120, 92]), np.array([135, 185, 238])
    else:
        top, bottom = np.array([210, 150, 88]), np.array([238, 218, 196])
    top = top * rng.uniform(0.9, 1.05)
    t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None, None] ** 0.8
    sky = (top * (1 - t) + bottom * t).astype(np.float32)
    sc.canvas.image[:rows] = sky
    _paint_clouds(sc, rows)


def _paint_clouds(sc: _Scene, rows: int) -> None:
    rng, S = sc.rng, sc.canvas.size
    n = int(rng.integers(4, 10)) if sc.weather == "overcast" else int(rng.integers(0, 6))
    if n == 0 or rows < 8:
        return
    low = max(4, S // 8)
    alpha = np.zeros((max(2, rows // 8), low), np.float32)
    for _ in range(n):
        cx, cy = rng.uniform(0, low), rng.uniform(0, alpha.shape[0] * 0.8)
        for _ in range(int(rng.integers(3, 8))):
            a = rng.uniform(0.03, 0.09) * low
            center = (int(cx + rng.normal(0, a)), int(cy + rng.normal(0, a * 0.3)))
            cv2.ellipse(alpha, center, (int(a) + 1, int(a * 0.45) + 1), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.2)
    alpha = cv2.resize(alpha, (S, rows), interpolation=cv2.INTER_LINEAR)[..., None]
    shade = np.linspace(1.0, 0.82, rows, dtype=np.float32)[:, None, None]
    white = 246.0 if sc.weather != "overcast" else 215.0
    sky = sc.canvas.image[:rows]
    sky[:] = sky * (1 - 0.85 * alpha) + white * shade * 0.85 * alpha


def _line_cover(dist_m: np.ndarray, width_m: float, ppm: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a painted line ``width_m`` wide at ``dist_m`` from its
    centre, where ``ppm`` is pixels per metre across the line."""
    w_px = width_m * ppm
    return np.clip(w_px / 2 + 0.5 - dist_m * ppm, 0.0, 1.0) * np.clip(w_px, 0.0, 1.0)


def _periodic_distance(v: np.ndarray, period: float, offset: float = 0.0) -> np.ndarray:
    """Distance from ``v`` to the nearest of offset + k * period."""
    return np.abs((v - offset + period / 2) % period - period / 2)


def _paint_ground(sc: _Scene) -> None:
    """Grass, pavement with joints and road with markings, all in perspective."""
    rng, cam, S, lay = sc.rng, sc.cam, sc.canvas.size, sc.layout
    y0 = int(np.floor(cam.horizon)) + 1
    if y0 >= S:
        return
    dy = np.arange(y0, S, dtype=np.float32) + 0.5 - cam.horizon
    Z = (cam.focal * cam.height / dy)[:, None]  # depth per row
    ppm_x = (dy / cam.height)[:, None]  # px per metre across, per row
    ppm_z = dy[:, None] / Z  # px per metre of depth, per row
    X = (np.arange(S, dtype=np.float32)[None, :] + 0.5 - cam.vp_x) / ppm_x
    shape = (S - y0, S)
    sun = sc.light.face((0, 1, 0))

    grass = np.array(_jitter(rng, (58, 128, 84) if rng.random() < 0.7 else (70, 140, 135)))
    texture = 0.06 * _smooth_noise(rng, shape, max(4, S // 12))
    ground = grass * (1 + texture + 0.08 * _smooth_noise(rng, shape, 3))[..., None]
    ground += rng.standard_normal(shape + (1,), dtype=np.float32) * 7

    paved = np.zeros(shape, bool)
    for lo, hi in lay.walks:
        paved |= (X > lo) & (X < hi)
    if lay.plaza_depth > 0:
        paved |= Z < lay.plaza_depth
    if lay.cross_path is not None:
        paved |= (Z > lay.cross_path[0]) & (Z < lay.cross_path[1])
    tile = rng.uniform(0.3, 0.7)
    stone = np.array(
        _jitter(rng, [(168, 168, 162), (150, 170, 186), (78, 96, 150)][rng.integers(3)])
    )
    joint_x = _line_cover(_periodic_distance(X, tile, rng.uniform(0, tile)), 0.02, ppm_x)
    joint_z = _line_cover(_periodic_distance(Z, tile), 0.02, ppm_z)
    fade = np.clip(tile * ppm_z / 4 - 0.5, 0, 1)  # joints closer than ~2 px blend into a tone
    joints = np.maximum(joint_x, joint_z) * fade
    pavement = stone * (1 + 0.04 * _smooth_noise(rng, shape, max(4, S // 8)))[..., None]
    pavement = pavement * (1 - 0.35 * joints)[..., None]
    ground = np.where(paved[..., None], pavement, ground)

    if lay.road is not None:
        ground = _paint_road(sc, ground, X, Z, ppm_x, ppm_z, shape)
    sc.canvas.image[y0:] = ground * sun


def _paint_road(sc: _Scene, ground, X, Z, ppm_x, ppm_z, shape) -> np.ndarray:
    rng, (lo, hi) = sc.rng, sc.layout.road
    asphalt = np.array(_jitter(rng, (84, 84, 86), 0.15))
    texture = 0.04 * _smooth_noise(rng, shape, max(4, sc.canvas.size // 10))
    road = asphalt * (1 + texture + 0.05 * _smooth_noise(rng, shape, 2))[..., None]
    road = road + rng.standard_normal(shape + (1,), dtype=np.float32) * 5
    paint = np.array((40, 190, 228) if rng.random() < 0.3 else (225, 225, 222), np.float32)
    centre = (lo + hi) / 2
    period, dash = rng.uniform(6, 12), rng.uniform(2, 4)
    dashed = ((Z + rng.uniform(0, period)) % period) < dash
    cover = _line_cover(np.abs(X - centre), 0.13, ppm_x) * dashed
    for edge in (lo + 0.35, hi - 0.35):
        cover = np.maximum(cover, _line_cover(np.abs(X - edge), 0.1, ppm_x))
    if rng.random() < 0.3:  # zebra crossing
        z0 = rng.uniform(6, 20)
        stripes = _periodic_distance(X, 1.0) < 0.25
        cover = np.maximum(cover, ((Z > z0) & (Z < z0 + 3.0) & stripes) * 0.95)
    road = road * (1 - cover[..., None]) + paint * cover[..., None]
    on_road = (X > lo) & (X < hi)
    curb = ((X > lo - 0.18) & (X <= lo)) | ((X >= hi) & (X < hi + 0.18))
    ground = np.where(on_road[..., None], road, ground)
    return np.where(curb[..., None], np.float32(190) * (1 + 0.05 * ground / 255), ground)


def _facade_windows(sc: _Scene, x0, x1, base, top, ppm, glass: Color) -> None:
    """Rows of windows on a facade facing the camera (x0..x1, base..top in image px)."""
    rng, img = sc.rng, sc.canvas.image
    floor_h, spacing = rng.uniform(3.0, 3.6) * ppm, rng.uniform(2.2, 3.6) * ppm
    win_w, win_h = spacing * rng.uniform(0.4, 0.7), floor_h * rng.uniform(0.45, 0.65)
    if win_w < 1.5 or win_h < 1.5:
        return
    frame = max(1, int(round(0.08 * ppm)))
    lit = 0.15 if sc.weather == "evening" else 0.0
    y = base - floor_h * 1.3
    while y - win_h > top + 0.4 * floor_h:
        x = x0 + (spacing - win_w) / 2
        while x + win_w < x1:
            g = np.array(glass) * rng.uniform(0.7, 1.5)
            if rng.random() < lit:
                g = np.array((120.0, 210.0, 240.0))
            p0, p1 = (int(x), int(y - win_h)), (int(x + win_w), int(y))
            cv2.rectangle(img, p0, p1, (200.0, 200.0, 198.0), -1)
            cv2.rectangle(
                img, (p0[0] + frame, p0[1] + frame), (p1[0] - frame, p1[1] - frame), g.tolist(), -1
            )
            x += spacing
        y -= floor_h


def _paint_far_row(sc: _Scene) -> None:
    """Buildings and tree crowns across the back of the scene, facing the camera."""
    rng, cam, S = sc.rng, sc.cam, sc.canvas.size
    Zb = sc.layout.far_depth
    ppm = cam.focal / Zb
    base = float(cam.project(0.0, 0.0, Zb)[1])
    front = sc.light.face((0, 0, -1))
    tall = (7, 30) if sc.layout.kind == "street" else (6, 16)
    tree_share = 0.15 if sc.layout.kind == "street" else 0.4
    x = -rng.uniform(0, 0.2) * S
    while x < S:
        w = rng.uniform(8, 28) * ppm
        if rng.random() < tree_share:
            _far_trees(sc, x, x + w, base, ppm)
        else:
            top = base - rng.uniform(*tall) * ppm
            wall = _jitter(rng, _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))])
            sc.canvas.fill(_rect(x, top, x + w, base + 1), _scaled(wall, front))
            glass = _jitter(rng, (98, 84, 66), 0.2)
            _facade_windows(sc, x, x + w, base, top, ppm, _scaled(glass, front))
            sc.canvas.fill(_rect(x, top, x + w, top + 0.5 * ppm), _scaled(wall, front * 0.7))
        x += w + (rng.uniform(0, 6) * ppm if rng.random() < 0.3 else 0)


def _far_trees(sc: _Scene, x0: float, x1: float, base: float, ppm: float) -> None:
    rng = sc.rng
    for _ in range(int(rng.integers(2, 6))):
        r = rng.uniform(2.0, 4.5) * ppm
        cx, cy = rng.uniform(x0, x1), base - rng.uniform(2.5, 6) * ppm
        green = _jitter(rng, (48, 96, 52), 0.2)
        sc.canvas.fill(_ellipse(cx, cy, r, r * rng.uniform(0.8, 1.1)), _scaled(green, 0.85))
        trunk = _ellipse(cx, cy, r * 0.12, 0.1)
        sc.canvas.fill(np.vstack([trunk, [[cx, base], [cx + r * 0.1, base]]]), (40, 55, 70))


def _paint_side_buildings(sc: _Scene) -> None:
    """Street scenes: facades running along the street beyond the sidewalks, in perspective."""
    rng, lay = sc.rng, sc.layout
    for side, x_wall in ((-1, lay.walks[0][0]), (1, lay.walks[-1][1])):
        if side * x_wall < 1.5 or rng.random() < 0.35:
            continue
        height = rng.uniform(6, 22)
        z_near, z_far = 0.6, lay.far_depth
        wall = _jitter(rng, _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))])
        light = sc.light.face((-side, 0, 0))
        sc.canvas.fill(_side_quad(sc.cam, x_wall, 0, height, z_near, z_far), _scaled(wall, light))
        glass = _scaled(_jitter(rng, (98, 84, 66), 0.2), light)
        _side_windows(sc, x_wall, height, z_near, z_far, glass)


def _side_windows(sc: _Scene, x_wall, height, z_near, z_far, glass: Color) -> None:
    rng, cam = sc.rng, sc.cam
    spacing, floor_h = rng.uniform(2.5, 4.0), rng.uniform(3.0, 3.6)
    win_w, win_h = spacing * rng.uniform(0.4, 0.65), floor_h * rng.uniform(0.45, 0.6)
    shop = rng.random() < 0.5
    z = z_near + rng.uniform(0, spacing)
    while z < z_far - spacing:
        if shop:  # shop windows on the ground floor
            pane = _side_quad(cam, x_wall, 0.4, 2.6, z, z + spacing * 0.8)
            sc.canvas.fill(pane, _scaled(glass, rng.uniform(0.6, 1.3)))
        y = floor_h * 1.3
        while y + win_h < height - 0.5:
            pane = _side_quad(cam, x_wall, y, y + win_h, z, z + win_w)
            sc.canvas.fill(pane, _scaled(glass, rng.uniform(0.7, 1.5)))
            y += floor_h
        z += spacing


# --------------------------------------------------------------------------------------------
# Poles
# --------------------------------------------------------------------------------------------
def _sample_pole(rng: np.random.Generator) -> _Thing:
    kind = str(rng.choice(["lamp", "lamp", "sign", "sign", "signal", "plain"]))
    color_name = str(rng.choice(list(_POLE_COLORS)))
    style = {"color": _jitter(rng, _POLE_COLORS[color_name], 0.1), "taper": rng.uniform(0.55, 1.0)}
    if kind == "lamp":
        height, width = rng.uniform(4.0, 7.5), rng.uniform(0.14, 0.26)
        style.update(
            base=rng.random() < 0.6,
            base_h=rng.uniform(0.4, 1.1),
            base_w=rng.uniform(1.4, 2.0),
            head=str(rng.choice(["cobra", "cobra", "box", "lantern", "globe"])),
            arms=[int(rng.choice([-1, 1]))] if rng.random() < 0.75 else [-1, 1],
            arm_len=rng.uniform(0.7, 1.8),
            arm_rise=rng.uniform(0.0, 0.5),
        )
    elif kind == "sign":
        height, width = rng.uniform(2.6, 3.4), rng.uniform(0.06, 0.1)
        style["color"] = _jitter(
            rng, _POLE_COLORS["galvanised"] if rng.random() < 0.6 else _POLE_COLORS["grey"]
        )
        style["taper"] = 1.0
        plates, h = [], height - rng.uniform(0.1, 0.3)
        for _ in range(1 + int(rng.random() < 0.35)):
            size = rng.uniform(0.45, 0.75)
            shape = str(rng.choice(["circle", "triangle", "rect", "rect", "octagon", "back"]))
            plates.append((shape, size, h - size / 2, int(rng.integers(1_000_000))))
            h -= size + rng.uniform(0.05, 0.15)
        style["plates"] = plates
    elif kind == "signal":
        height, width = rng.uniform(3.0, 4.2), rng.uniform(0.12, 0.2)
        style.update(
            box_h=rng.uniform(2.3, 3.0),
            side=int(rng.choice([-1, 0, 1])),
            lit=int(rng.integers(3)),
            ped=rng.random() < 0.5,
            box_color=_jitter(rng, (36, 36, 38) if rng.random() < 0.7 else (40, 170, 210)),
        )
    else:
        height, width = rng.uniform(4.0, 9.0), rng.uniform(0.16, 0.32)
        style.update(
            bands=[
                (rng.uniform(0.8, 2.5), str(rng.choice(["white", "red", "yellow"])))
                for _ in range(int(rng.integers(0, 3)))
            ],
            poster=rng.random() < 0.4,
            box=rng.random() < 0.3,
        )
    return _Thing(kind, POLE, 0.0, 1.0, width, width, height, style)


def _shaft(sc: _Scene, t: _Thing, owner: int) -> Tuple[float, float, float, float, float]:
    """Draws a pole's shaft (and base); returns (x_foot, y_foot, px per metre, w_bottom, w_top)."""
    cam, st = sc.cam, t.style
    k = cam.focal / t.Z
    xf, yf = t.foot(cam)
    w_top = max(sc.min_px, t.width * st["taper"] * k)
    w_bot = max(w_top, t.width * k)
    y_top = yf - t.height * k
    b_bot = w_bot / 2 * cam.height / t.Z
    shade = _cylinder_shade(xf - w_bot / 2, xf + w_bot / 2, sc.light)
    sc.canvas.fill(_upright(xf, yf, y_top, w_bot, w_top, b_bot), st["color"], owner, shade)
    if st.get("base"):
        wb = max(w_bot * st["base_w"], w_bot + 2)
        y_base = yf - st["base_h"] * k
        # a base wider than the shaft, with a sloping collar up to it
        collar = [[xf - w_bot / 2, y_base - 0.15 * k], [xf + w_bot / 2, y_base - 0.15 * k]]
        body = _upright(xf, yf, y_base, wb, wb * 0.9, wb / 2 * cam.height / t.Z)
        shade = _cylinder_shade(xf - wb / 2, xf + wb / 2, sc.light)
        sc.canvas.fill(
            np.vstack([collar, body[1:2], body[2:], body[:1]]), st["color"], owner, shade
        )
    return xf, yf, k, w_bot, w_top


def _draw_lamp(sc: _Scene, t: _Thing, owner: int) -> None:
    xf, yf, k, _, _ = _shaft(sc, t, owner)
    y_top = yf - t.height * k
    if t.style["head"] in ("lantern", "globe"):
        _lamp_on_top(sc, t, owner, xf, y_top, k)
    else:
        for side in t.style["arms"]:
            _lamp_arm(sc, t, owner, xf, y_top, k, side)


def _lamp_on_top(sc: _Scene, t: _Thing, owner: int, xf: float, y_top: float, k: float) -> None:
    """A globe, or a lantern under a little roof, sitting on top of the shaft."""
    color, r = t.style["color"], max(0.2 * k, sc.min_px)
    if t.style["head"] == "globe":
        shade = _cylinder_shade(xf - r, xf + r, sc.light)
        sc.canvas.fill(_ellipse(xf, y_top - r * 0.9, r, r), _LAMP_GLOW, owner, shade)
        return
    glass = [[xf - r * 0.6, y_top], [xf + r * 0.6, y_top], [xf + r, y_top - 2.8 * r]]
    sc.canvas.fill(np.array(glass + [[xf - r, y_top - 2.8 * r]]), _LAMP_GLOW, owner)
    roof = [[xf - r * 1.2, y_top - 2.7 * r], [xf + r * 1.2, y_top - 2.7 * r], [xf, y_top - 3.6 * r]]
    sc.canvas.fill(np.array(roof), color, owner)
    post = np.array([[xf, y_top], [xf, y_top - 2.8 * r]])
    sc.canvas.fill(_thick_line(post, max(2.0, r * 0.25)), color, owner)


def _lamp_arm(sc: _Scene, t: _Thing, owner: int, xf: float, y_top: float, k: float, side: int):
    """A curved arm reaching out to ``side`` (-1 left, 1 right) with a lamp head at its end."""
    st = t.style
    arm_w = max(3.0, 0.7 * sc.min_px, 0.07 * k)
    start = np.array([xf, y_top + 0.25 * k])
    end = start + (side * st["arm_len"] * k, -st["arm_rise"] * k)
    ctrl = np.array([xf + side * st["arm_len"] * k * 0.15, end[1] - 0.05 * k])
    s = np.linspace(0, 1, 12)[:, None]
    curve = (1 - s) ** 2 * start + 2 * s * (1 - s) * ctrl + s**2 * end  # quadratic Bezier
    sc.canvas.fill(_thick_line(curve, arm_w), st["color"], owner)
    hw, hh = max(0.32 * k, 2 * arm_w), max(0.12 * k, arm_w)
    cx, cy = end[0] + side * hw * 0.45, end[1]
    if st["head"] == "cobra":
        upper = _ellipse(cx, cy, hw, hh, np.pi, 2 * np.pi, 14)
        head = np.vstack([upper, _ellipse(cx, cy, hw, hh * 0.8, 0, np.pi, 14)])
    else:
        head = _rect(cx - hw, cy - hh, cx + hw, cy + hh)
    sc.canvas.fill(head, _scaled(st["color"], 0.9), owner)
    sc.canvas.fill(
        _ellipse(cx, cy + hh * 0.35, hw * 0.7, hh * 0.5, 0, np.pi, 10), _LAMP_GLOW, owner
    )


def _draw_sign(sc: _Scene, t: _Thing, owner: int) -> None:
    xf, yf, k, _, _ = _shaft(sc, t, owner)
    for shape, size, centre_h, seed in t.style["plates"]:
        r = max(size / 2 * k, 2.5 * sc.min_px)
        _draw_plate(sc, owner, shape, xf, yf - centre_h * k, r, np.random.default_rng(seed))


def _draw_plate(sc: _Scene, owner: int, shape: str, cx: float, cy: float, r: float, rng) -> None:
    """A traffic sign about ``2 r`` px across centred on (cx, cy), facing the camera."""
    fill, border = sc.canvas.fill, max(1.5, 0.12 * r)
    if shape == "circle":
        blue = rng.random() < 0.4
        fill(_ellipse(cx, cy, r, r), _SIGN_BLUE if blue else _SIGN_RED, owner)
        if blue:
            fill(_rect(cx - 0.5 * r, cy - border, cx + 0.5 * r, cy + border), _WHITE, owner)
        else:
            fill(_ellipse(cx, cy, r - border, r - border), _WHITE, owner)
            fill(_rect(cx - 0.45 * r, cy - 0.12 * r, cx + 0.45 * r, cy + 0.12 * r), _INK, owner)
    elif shape == "triangle":
        tri = np.array([[cx, cy - r], [cx + r * 1.05, cy + r * 0.8], [cx - r * 1.05, cy + r * 0.8]])
        centre = np.array([cx, cy + r * 0.2])
        fill(tri, _SIGN_RED, owner)
        fill(centre + (tri - centre) * 0.7, _WHITE, owner)
    elif shape == "octagon":
        ang = np.pi / 8 + np.arange(8) * np.pi / 4
        fill(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1), _SIGN_RED, owner)
        fill(_rect(cx - 0.6 * r, cy - 0.15 * r, cx + 0.6 * r, cy + 0.15 * r), _WHITE, owner)
    else:
        w, h = r * rng.uniform(0.9, 1.5), r * rng.uniform(0.6, 0.9)
        if shape == "back":  # seen from behind: bare metal
            fill(_rect(cx - w, cy - h, cx + w, cy + h), (150, 150, 150), owner)
            return
        paint = [_SIGN_BLUE, _WHITE, (60, 120, 40), (40, 190, 230)][rng.integers(4)]
        fill(_rect(cx - w, cy - h, cx + w, cy + h), _WHITE, owner)
        fill(
            _rect(cx - w + border, cy - h + border, cx + w - border, cy + h - border), paint, owner
        )
        ink = _INK if paint == _WHITE else _WHITE
        for j in range(int(rng.integers(1, 4))):  # lines of "text"
            y = cy - h * 0.5 + j * h * 0.4
            fill(
                _rect(cx - w * 0.6, y, cx + w * rng.uniform(0, 0.6), y + max(1.0, h * 0.15)),
                ink,
                owner,
            )


def _draw_signal(sc: _Scene, t: _Thing, owner: int) -> None:
    st = t.style
    xf, yf, k, w_bot, _ = _shaft(sc, t, owner)
    red, amber, green = (40, 40, 200), (40, 160, 230), (90, 200, 60)
    heads = [(st["box_h"], 0.34, 0.95, [red, amber, green])]
    if st["ped"]:  # a smaller pedestrian signal below
        heads.append((st["box_h"] - 0.9, 0.3, 0.6, [red, green]))
    for centre_h, box_w, box_h, lamps in heads:
        w, h = max(box_w * k, 2 * sc.min_px), box_h * k
        cx, cy = xf + st["side"] * (w_bot + w) / 2, yf - centre_h * k
        shade = _cylinder_shade(cx - w / 2, cx + w / 2, sc.light)
        sc.canvas.fill(
            _rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), st["box_color"], owner, shade
        )
        for i, color in enumerate(lamps):
            lit = i == st["lit"] % len(lamps)
            ly = cy - h / 2 + h * (i + 0.5) / len(lamps)
            sc.canvas.fill(
                _ellipse(cx, ly, w * 0.32, w * 0.32, n=16),
                color if lit else _scaled(color, 0.3),
                owner,
            )


def _draw_plain(sc: _Scene, t: _Thing, owner: int) -> None:
    st = t.style
    xf, yf, k, w_bot, w_top = _shaft(sc, t, owner)
    y_top = yf - t.height * k
    sc.canvas.fill(_ellipse(xf, y_top, w_top * 0.6, w_top * 0.35), _scaled(st["color"], 0.8), owner)
    shade = _cylinder_shade(xf - w_bot / 2, xf + w_bot / 2, sc.light)
    for h, paint in st["bands"]:  # reflective bands, as wide as the tapered shaft there
        y, w = yf - h * k, w_bot + (w_top - w_bot) * h / t.height
        sc.canvas.fill(
            _upright(xf, y, y - 0.12 * k, w, w, w / 2 * sc.cam.height / t.Z),
            _BAND_PAINT[paint],
            owner,
            shade,
        )
    if st["poster"]:
        w, y = w_bot * 0.4, yf - 1.6 * k
        sc.canvas.fill(_rect(xf - w, y - 0.3 * k, xf + w, y), (200, 210, 220), owner)
    if st["box"]:  # a utility box strapped to the pole
        w, y = max(0.3 * k, w_bot * 1.4), yf - 1.2 * k
        sc.canvas.fill(
            _rect(xf - w / 2, y - 0.45 * k, xf + w / 2, y), _scaled(st["color"], 1.15), owner
        )


# --------------------------------------------------------------------------------------------
# Trash cans
# --------------------------------------------------------------------------------------------
class _Drum:
    """Image geometry of an upright, possibly tapered, round bin standing at ``t``'s spot.

    Horizontal circles below eye level are seen from above as ellipses whose half-height shrinks
    as they approach eye level: ``half_height(h) = radius(h) * (eye height - h) / Z``.
    """

    def __init__(self, cam: _Camera, t: _Thing):
        self.cam, self.t = cam, t
        self.k = cam.focal / t.Z  # px per metre
        self.xc, self.yf = t.foot(cam)

    def radius(self, h: float) -> float:
        """Radius in px at height ``h`` (m)."""
        r_top = self.t.width / 2 * self.k
        return r_top * (self.t.style["taper"] + (1 - self.t.style["taper"]) * h / self.t.height)

    def y(self, h: float) -> float:
        return self.yf - h * self.k

    def half_height(self, h: float) -> float:
        return self.radius(h) * max(self.cam.height - h, 0.0) / self.t.Z

    def rim(self, h: float, t0: float, t1: float) -> np.ndarray:
        """Arc of the circle at height ``h`` from angle t0 to t1 (0..pi is the near half)."""
        return _ellipse(self.xc, self.y(h), self.radius(h), self.half_height(h), t0, t1, 16)

    def ring(self, h0: float, h1: float) -> np.ndarray:
        """The visible band of the side between heights h0 < h1 (m), as a polygon."""
        return np.vstack([self.rim(h0, 0, np.pi), self.rim(h1, np.pi, 0)])


def _sample_can(rng: np.random.Generator) -> _Thing:
    kind = str(rng.choice(["round", "round", "box", "wheelie", "wheelie"]))
    color = _jitter(rng, _BIN_COLORS[str(rng.choice(list(_BIN_COLORS)))], 0.1)
    style = {
        "color": color,
        "label": rng.random() < 0.45,
        "label_color": (230, 230, 230) if rng.random() < 0.6 else (40, 190, 230),
    }
    if kind == "round":
        width, height = rng.uniform(0.45, 0.7), rng.uniform(0.8, 1.1)
        style.update(
            taper=rng.uniform(0.82, 1.0),
            top=str(rng.choice(["flat", "dome", "open", "bag", "overflow"])),
            ribs=int(rng.integers(0, 3)),
            slats=rng.random() < 0.2,
            bag_color=_jitter(rng, (32, 32, 34) if rng.random() < 0.6 else (150, 150, 145)),
        )
        depth = width
    elif kind == "box":
        width, depth, height = (
            rng.uniform(0.45, 0.75),
            rng.uniform(0.35, 0.6),
            rng.uniform(0.85, 1.2),
        )
        style.update(
            lid_color=_jitter(rng, color, 0.25), slot=rng.random() < 0.6, grooves=rng.random() < 0.3
        )
    else:
        width, depth, height = (
            rng.uniform(0.5, 0.65),
            rng.uniform(0.6, 0.75),
            rng.uniform(0.95, 1.1),
        )
        lid = (
            color
            if rng.random() < 0.6
            else _BIN_COLORS[str(rng.choice(["yellow", "blue", "green", "red"]))]
        )
        style.update(lid_color=_jitter(rng, lid, 0.05))
    return _Thing(kind, TRASH_CAN, 0.0, 1.0, width, depth, height, style)


def _draw_round(sc: _Scene, t: _Thing, owner: int) -> None:
    st = t.style
    cyl = _Drum(sc.cam, t)
    shade = _cylinder_shade(cyl.xc - cyl.radius(t.height), cyl.xc + cyl.radius(t.height), sc.light)
    top, bottom = cyl.rim(t.height, np.pi, 2 * np.pi), cyl.rim(0.0, 0, np.pi)
    sc.canvas.fill(np.vstack([top, bottom]), st["color"], owner, shade)
    for i in range(st["ribs"]):
        h = t.height * (0.25 + 0.5 * i)
        sc.canvas.fill(cyl.ring(h, h + 0.04), _scaled(st["color"], 0.75), owner, shade)
    if st["slats"]:  # a wooden bin: vertical gaps between the slats
        for u in np.linspace(-0.9, 0.9, 9):
            top_y = cyl.y(t.height) + cyl.half_height(t.height) * np.sqrt(1 - u * u)
            bottom_y = cyl.y(0.0) + cyl.half_height(0.0) * np.sqrt(1 - u * u)
            x = cyl.xc + u * cyl.radius(t.height)
            gap = _thick_line(np.array([[x, top_y], [x, bottom_y]]), max(1.0, 0.012 * cyl.k))
            sc.canvas.fill(gap, _scaled(st["color"], 0.55), owner)
    if st["label"]:
        w, y = cyl.radius(0.55 * t.height) * 0.45, cyl.y(0.55 * t.height)
        sc.canvas.fill(
            _rect(cyl.xc - w, y - 0.2 * cyl.k, cyl.xc + w, y), st["label_color"], owner, shade
        )
    _round_top(sc, t, owner, cyl, shade)


def _round_top(sc: _Scene, t: _Thing, owner: int, cyl: "_Drum", shade: Shade) -> None:
    """Flat lid, dome lid, open top, or a bin bag folded over the rim (maybe overflowing)."""
    st, top, k = t.style, t.style["top"], cyl.k
    xc, y_top, r, b = cyl.xc, cyl.y(t.height), cyl.radius(t.height), cyl.half_height(t.height)
    if top == "flat":
        sc.canvas.fill(
            cyl.ring(t.height - 0.05, t.height), _scaled(st["color"], 0.85), owner, shade
        )
        lid = _scaled(st["color"], sc.light.face((0, 1, 0)) * 1.1)
        sc.canvas.fill(_ellipse(xc, y_top, r, b), lid, owner)
    elif top == "dome":
        dome = _ellipse(xc, y_top, r * 1.03, 0.22 * k, np.pi, 2 * np.pi, 18)
        sc.canvas.fill(
            np.vstack([dome, _ellipse(xc, y_top, r * 1.03, b, 0, np.pi, 12)]),
            st["color"],
            owner,
            shade,
        )
        sc.canvas.fill(_ellipse(xc, y_top - 0.1 * k, r * 0.4, max(1.0, 0.05 * k)), _INK, owner)
    else:
        bagged = top in ("bag", "overflow")
        sc.canvas.fill(
            _ellipse(xc, y_top, r, b),
            st["bag_color"] if bagged else _scaled(st["color"], 0.9),
            owner,
        )
        sc.canvas.fill(_ellipse(xc, y_top, r * 0.88, b * 0.85), (22, 22, 24), owner)
        if bagged:
            sc.canvas.fill(cyl.ring(t.height - 0.12, t.height), st["bag_color"], owner, shade)
        if top == "overflow":
            ang = np.linspace(np.pi, 2 * np.pi, 14)
            bulge = 0.18 * k * (1 + 0.25 * np.sin(ang * 5 + t.X))
            pts = np.stack([xc + r * 0.9 * np.cos(ang), y_top + bulge * np.sin(ang)], axis=1)
            sc.canvas.fill(pts, st["bag_color"], owner, shade)


def _draw_box(sc: _Scene, t: _Thing, owner: int) -> None:
    st = t.style
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    body_h = t.height - 0.08
    _fill_box(sc, (x0, x1, 0.0, body_h, z0, z1), st["color"], owner)
    front = sc.light.face((0, 0, -1))
    if st["grooves"]:
        for u in np.linspace(0.15, 0.85, 5):
            x = x0 + u * t.width
            pts = _front_quad(sc.cam, x - 0.012, x + 0.012, 0.1, body_h - 0.1, z0)
            sc.canvas.fill(pts, _scaled(st["color"], front * 0.7), owner)
    if st["slot"]:
        pts = _front_quad(
            sc.cam, x0 + 0.15 * t.width, x1 - 0.15 * t.width, body_h - 0.2, body_h - 0.1, z0
        )
        sc.canvas.fill(pts, (22, 22, 24), owner)
    if st["label"]:
        pts = _front_quad(sc.cam, t.X - 0.12, t.X + 0.12, 0.35, 0.6, z0)
        sc.canvas.fill(pts, _scaled(st["label_color"], front), owner)
    _fill_box(
        sc, (x0 - 0.03, x1 + 0.03, body_h, t.height, z0 - 0.03, z1 + 0.03), st["lid_color"], owner
    )


def _draw_wheelie(sc: _Scene, t: _Thing, owner: int) -> None:
    cam, st = sc.cam, t.style
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    h = t.height - 0.07  # body; the lid sits on top
    for xw in (x0 - 0.03, x1 + 0.03):  # wheels at the back, partly behind the body
        cx, cy = (float(v) for v in cam.project(xw, 0.11, z1 - 0.12))
        r = 0.11 * cam.focal / (z1 - 0.12)
        sc.canvas.fill(_ellipse(cx, cy, r * 0.45, r), (28, 28, 28), owner)
    # the body narrows towards the bottom: bottom corners are set in by 5 cm
    bx0, bx1, bz0 = x0 + 0.05, x1 - 0.05, z0 + 0.05
    faces = [([(bx0, 0, bz0), (bx1, 0, bz0), (x1, h, z0), (x0, h, z0)], (0, 0, -1))]
    if x0 > 0:
        faces.append(([(bx0, 0, bz0), (bx0, 0, z1), (x0, h, z1), (x0, h, z0)], (-1, 0, 0)))
    if x1 < 0:
        faces.append(([(bx1, 0, bz0), (bx1, 0, z1), (x1, h, z1), (x1, h, z0)], (1, 0, 0)))
    for pts, normal in faces[::-1]:
        sc.canvas.fill(cam.points(pts), _scaled(st["color"], sc.light.face(normal)), owner)
    front = sc.light.face((0, 0, -1))
    panel = _front_quad(cam, x0 + 0.08, x1 - 0.08, 0.25, h - 0.2, z0 + 0.02)
    sc.canvas.fill(panel, _scaled(st["color"], front * 0.88), owner)
    if st["label"]:
        label = _front_quad(cam, t.X - 0.1, t.X + 0.1, 0.55, 0.7, z0)
        sc.canvas.fill(label, _scaled(st["label_color"], front), owner)
    _fill_box(sc, (x0 - 0.02, x1 + 0.02, h, t.height, z0 - 0.05, z1 + 0.02), st["lid_color"], owner)
    handle = _front_quad(cam, x0 + 0.05, x1 - 0.05, t.height, t.height + 0.04, z1)
    sc.canvas.fill(handle, _scaled(st["lid_color"], 0.7), owner)


# --------------------------------------------------------------------------------------------
# Scenery: trees, bushes, cars
# --------------------------------------------------------------------------------------------
def _sample_scenery(rng: np.random.Generator, kind: str) -> _Thing:
    if kind == "tree":
        crown, trunk = rng.uniform(1.5, 3.2), rng.uniform(0.2, 0.4)
        green = _jitter(rng, (46, 110, 62) if rng.random() < 0.7 else (40, 120, 110), 0.2)
        style = {"trunk_w": trunk, "crown_h": rng.uniform(2.2, 3.5), "green": green}
        style["seed"] = int(rng.integers(1 << 30))
        return _Thing("tree", 0, 0.0, 1.0, 2 * crown, trunk, style["crown_h"] + 2 * crown, style)
    if kind == "bush":
        w, h = rng.uniform(0.8, 2.6), rng.uniform(0.5, 1.2)
        green = _jitter(rng, (40, 98, 50), 0.2)
        style = {"seed": int(rng.integers(1 << 30)), "green": green, "flowers": rng.random() < 0.2}
        return _Thing("bush", 0, 0.0, 1.0, w, w * 0.6, h, style)
    style = {"color": _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.08)}
    size = rng.uniform(1.7, 1.9), rng.uniform(4.0, 4.6), rng.uniform(1.4, 1.6)
    return _Thing("car", 0, 0.0, 1.0, *size, style)


def _blob_cluster(sc: _Scene, cx, cy, rx, ry, n: int, green: Color, rng: np.random.Generator):
    """Foliage: overlapping ellipses, darker on the side away from the sun and underneath."""
    sx = sc.light.sun[0]
    for _ in range(n):
        dx, dy = rng.uniform(-0.65, 0.65), rng.uniform(-0.6, 0.6)
        r = rng.uniform(0.35, 0.6)
        light = 0.85 + 0.25 * dx * np.sign(sx) - 0.2 * dy + rng.uniform(-0.1, 0.1)
        pts = _ellipse(cx + dx * rx, cy + dy * ry, r * rx, r * ry * rng.uniform(0.8, 1.2), n=20)
        sc.canvas.fill(pts, _scaled(green, light))


def _draw_tree(sc: _Scene, t: _Thing, owner: int) -> None:
    rng, st = np.random.default_rng(t.style["seed"]), t.style
    k = sc.cam.focal / t.Z
    xf, yf = t.foot(sc.cam)
    tw = max(2.0, st["trunk_w"] * k)
    crown_y = yf - (st["crown_h"] + t.width / 2 * 0.8) * k
    trunk = _upright(xf, yf, crown_y, tw, tw * 0.7, tw / 2 * sc.cam.height / t.Z)
    sc.canvas.fill(trunk, (42, 58, 80), -1, _cylinder_shade(xf - tw / 2, xf + tw / 2, sc.light))
    rx = t.width / 2 * k
    _blob_cluster(sc, xf, crown_y, rx, rx * 0.85, int(rng.integers(8, 14)), st["green"], rng)


def _draw_bush(sc: _Scene, t: _Thing, owner: int) -> None:
    rng, st = np.random.default_rng(t.style["seed"]), t.style
    k = sc.cam.focal / t.Z
    xf, yf = t.foot(sc.cam)
    rx, ry = t.width / 2 * k, t.height / 2 * k
    for u in np.linspace(-0.7, 0.7, 4):  # a darker row touching the ground, mostly covered
        bottom = _ellipse(xf + u * rx, yf - 0.3 * ry, 0.35 * rx, 0.3 * ry, n=20)
        sc.canvas.fill(bottom, _scaled(st["green"], 0.65))
    _blob_cluster(sc, xf, yf - 1.05 * ry, rx, ry, int(rng.integers(7, 12)), st["green"], rng)
    if st["flowers"]:
        r = max(1.0, 0.04 * k)
        color = [(180, 120, 230), (60, 210, 240), (235, 235, 240)][rng.integers(3)]
        for _ in range(int(rng.integers(8, 20))):
            x, y = xf + rng.uniform(-0.8, 0.8) * rx, yf - ry + rng.uniform(-0.8, 0.6) * ry
            sc.canvas.fill(_ellipse(x, y, r, r, n=8), color)


def _draw_car(sc: _Scene, t: _Thing, owner: int) -> None:
    """A parked or waiting car seen from behind (and from the side when off-centre)."""
    cam, color, h = sc.cam, t.style["color"], t.height
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    for a, b in ((x0 + 0.08, x0 + 0.33), (x1 - 0.33, x1 - 0.08)):  # rear wheels
        _fill_box(sc, (a, b, 0.0, 0.6, z0 + 0.6, z0 + 0.9), (26, 26, 26), -1)
    _fill_box(sc, (x0, x1, 0.25, 0.95, z0, z1), color, -1)
    cabin = (x0 + 0.12, x1 - 0.12, 0.95, h, z0 + 0.7, z1 - 1.1)
    _fill_box(sc, cabin, color, -1)
    glass = (70, 60, 50)
    sc.canvas.fill(_front_quad(cam, x0 + 0.22, x1 - 0.22, 1.0, h - 0.08, z0 + 0.7), glass)
    side = cabin[0] if cabin[0] > 0 else cabin[1] if cabin[1] < 0 else None
    if side is not None:  # side windows on the cabin face turned to the camera
        sc.canvas.fill(_side_quad(cam, side, 1.0, h - 0.08, z0 + 0.8, z1 - 1.2), glass)
    front = sc.light.face((0, 0, -1))
    sc.canvas.fill(_front_quad(cam, x0, x1, 0.25, 0.42, z0 - 0.02), _scaled((40, 40, 42), front))
    for a, b in ((x0 + 0.05, x0 + 0.35), (x1 - 0.35, x1 - 0.05)):
        sc.canvas.fill(_front_quad(cam, a, b, 0.7, 0.85, z0 - 0.01), (40, 40, 200))
    sc.canvas.fill(_front_quad(cam, t.X - 0.26, t.X + 0.26, 0.47, 0.58, z0 - 0.01), (225, 225, 225))


_DRAW = {
    "lamp": _draw_lamp,
    "sign": _draw_sign,
    "signal": _draw_signal,
    "plain": _draw_plain,
    "round": _draw_round,
    "box": _draw_box,
    "wheelie": _draw_wheelie,
    "tree": _draw_tree,
    "bush": _draw_bush,
    "car": _draw_car,
}


def _paint_shadows(sc: _Scene, things: List[_Thing]) -> None:
    """Darkens the ground under every object and beside it, away from the sun, with soft edges."""
    cam, S = sc.cam, sc.canvas.size
    dx, dz = sc.light.shadow_step()
    shadow = np.zeros((S, S), np.float32)
    for t in things:
        w, d = t.footprint()
        foot = np.array(
            [(t.X - w / 2, t.Z), (t.X + w / 2, t.Z), (t.X + w / 2, t.Z + d), (t.X - w / 2, t.Z + d)]
        )
        tip = foot + (dx * t.height, dz * t.height)
        if t.kind == "tree":  # the crown throws most of the shadow
            ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            h = t.style["crown_h"] + t.width / 2
            tip = np.stack(
                [
                    t.X + dx * h + t.width / 2 * np.cos(ang),
                    t.Z + dz * h + t.width / 2 * np.sin(ang),
                ],
                1,
            )
        ground = np.vstack([foot, tip])
        ground[:, 1] = np.maximum(ground[:, 1], 0.3)  # shadows reaching behind the camera
        pts = cam.points(np.c_[ground[:, 0], np.zeros(len(ground)), ground[:, 1]])
        hull = cv2.convexHull(np.round(pts * 8).astype(np.int32))
        cv2.fillPoly(shadow, [hull], sc.light.shadow, lineType=cv2.LINE_8, shift=3)
        k = cam.focal / t.Z
        contact = _ellipse(*t.foot(cam), max(w, 0.2) * k * 0.7, 0.1 * k)
        cv2.fillPoly(
            shadow, [np.round(contact * 8).astype(np.int32)], 0.45, lineType=cv2.LINE_8, shift=3
        )
    shadow[: max(0, int(cam.horizon))] = 0
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.8, 1.5 * S / 640))
    sc.canvas.image *= (1 - np.clip(shadow, 0, 0.8))[..., None]


# --------------------------------------------------------------------------------------------
# Layout: where the things go
# --------------------------------------------------------------------------------------------
def _sample_layout(rng: np.random.Generator, kind: str) -> _Layout:
    if kind == "street":
        centre, width = rng.uniform(-6, 6), rng.uniform(6, 12)
        lo, hi = centre - width / 2, centre + width / 2
        walks = [(lo - rng.uniform(2.5, 5), lo - 0.18), (hi + 0.18, hi + rng.uniform(2.5, 5))]
        return _Layout("street", road=(lo, hi), walks=walks, far_depth=rng.uniform(35, 80))
    centre, width = rng.uniform(-4, 4), rng.uniform(2, 5)
    walks = [(centre - width / 2, centre + width / 2)]
    plaza = rng.uniform(3.5, 9) if rng.random() < 0.6 else 0.0
    z = rng.uniform(8, 20)
    cross = (z, z + rng.uniform(2, 4)) if rng.random() < 0.5 else None
    return _Layout(
        "campus", walks=walks, plaza_depth=plaza, cross_path=cross, far_depth=rng.uniform(30, 70)
    )


def _bands(lay: _Layout, kind: str) -> List[Tuple[float, float]]:
    """X ranges where a thing of this kind may stand."""
    if kind == "car":
        lo, hi = lay.road
        return [(lo + 1.2, hi - 1.2)] if hi - lo > 2.6 else [(lo, hi)]
    if lay.kind == "street":
        near_curb = [
            (lay.walks[0][1] - 0.9, lay.walks[0][1] - 0.25),
            (lay.walks[1][0] + 0.25, lay.walks[1][0] + 0.9),
        ]
        return near_curb + lay.walks if kind in ("lamp", "sign", "signal", "plain") else lay.walks
    return [(-25.0, 25.0)]


def _overlaps(sc: _Scene, t: _Thing, others: List[_Thing]) -> bool:
    """True if ``t`` stands on another thing's spot, or either would hide over half of an object."""
    for o in others:
        (tw, td), (ow, od) = t.footprint(), o.footprint()
        if abs(t.X - o.X) < (tw + ow) / 2 + 0.1 and t.Z < o.Z + od + 0.1 and o.Z < t.Z + td + 0.1:
            return True
        near, far = (t, o) if t.Z < o.Z else (o, t)
        if far.category_id == 0:
            continue
        a, b = near.box(sc.cam, sc.min_px), far.box(sc.cam, sc.min_px)
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        if ix * iy > 0.5 * (b[2] - b[0]) * (b[3] - b[1]):
            return True
    return False


def _place(
    sc: _Scene, t: _Thing, things: List[_Thing], z_range, bands=None, tries: int = 30
) -> bool:
    """Finds a spot for ``t`` (depth log-uniform in z_range, X in one of the bands) and adds it."""
    rng, cam, S = sc.rng, sc.cam, sc.canvas.size
    z_lo, z_hi = z_range
    if z_hi <= z_lo:
        return False
    bands = bands if bands is not None else _bands(sc.layout, t.kind)
    for _ in range(tries):
        t.Z = float(np.exp(rng.uniform(np.log(z_lo), np.log(z_hi))))
        view = ((0.03 * S - cam.vp_x) * t.Z / cam.focal, (0.97 * S - cam.vp_x) * t.Z / cam.focal)
        usable = [(max(lo, view[0]), min(hi, view[1])) for lo, hi in bands]
        usable = [b for b in usable if b[1] > b[0]]
        if not usable:
            continue
        lo, hi = usable[rng.integers(len(usable))]
        t.X = float(rng.uniform(lo, hi))
        if not _overlaps(sc, t, things):
            things.append(t)
            return True
    return False


def _depth_range(sc: _Scene, t: _Thing) -> Tuple[float, float]:
    """Depths at which ``t`` stands inside the picture and is not drawn too small."""
    S, s = sc.canvas.size, sc.canvas.size / 640
    z_min = sc.cam.depth_at_row(S - 3) * 1.05 + t.depth * 0.5
    min_h = {POLE: 110 * s, TRASH_CAN: 26 * s}.get(t.category_id, 20 * s)
    z_max = min(
        t.height * sc.cam.focal / min_h,
        32.0 if t.category_id == POLE else 24.0,
        0.8 * sc.layout.far_depth,
    )
    return z_min, z_max


def _plan(sc: _Scene, empty_prob: float) -> List[_Thing]:
    """Picks and places the poles, trash cans and scenery of one scene."""
    rng = sc.rng
    things: List[_Thing] = []
    if rng.random() >= empty_prob:
        n_poles, n_cans = int(rng.integers(1, 5)), int(rng.choice([0, 1, 1, 2, 2, 3]))
    else:
        n_poles, n_cans = 0, 0
    for _ in range(n_poles):
        t = _sample_pole(rng)
        _place(sc, t, things, _depth_range(sc, t))
    poles = [t for t in things if t.category_id == POLE]
    for _ in range(n_cans):
        t = _sample_can(rng)
        z_lo, z_hi = _depth_range(sc, t)
        if poles and rng.random() < 0.4:  # next to a pole, in front of it or just behind
            p = poles[rng.integers(len(poles))]
            z = p.Z - rng.uniform(0.3, 0.9) * (1 if rng.random() < 0.6 else -1)
            z_near = (max(z_lo, z - 0.1), min(z_hi, z + 0.1))
            if _place(sc, t, things, z_near, [(p.X - 0.5, p.X + 0.5)], 5):
                continue
        _place(sc, t, things, (z_lo, z_hi))
    _plan_scenery(sc, things)
    return things


def _plan_scenery(sc: _Scene, things: List[_Thing]) -> None:
    """Adds trees, bushes and cars, and sometimes a bush or car right in front of an object."""
    rng, lay = sc.rng, sc.layout
    street = lay.kind == "street"
    counts = {"tree": int(rng.integers(0, 3) if street else rng.integers(1, 5))}
    counts.update(bush=int(rng.integers(0, 3)), car=int(rng.integers(0, 3)) if street else 0)
    z_min = sc.cam.depth_at_row(sc.canvas.size - 3) * 1.05
    for kind, n in counts.items():
        for _ in range(n):
            t = _sample_scenery(rng, kind)
            bands = _bands(lay, kind) if kind == "car" else None
            if kind == "tree" and street:  # trees line the far side of the sidewalks
                left, right = lay.walks[0][0], lay.walks[1][1]
                bands = [(left - 4, left + 1), (right - 1, right + 4)]
            _place(sc, t, things, (z_min + t.depth / 2, 0.7 * lay.far_depth), bands)
    objects = [t for t in things if t.category_id]
    if objects and rng.random() < 0.4:  # a foreground bush or car partly hiding an object
        target = objects[rng.integers(len(objects))]
        kind = "car" if street and rng.random() < 0.3 else "bush"
        for _ in range(8):
            t = _sample_scenery(rng, kind)
            z = target.Z * rng.uniform(0.45, 0.85) - t.depth
            if z <= z_min:
                continue
            side = rng.choice([-1, 1])
            x = target.X + side * (target.width + t.width) / 2 * rng.uniform(0.2, 0.9)
            if _place(sc, t, things, (z, z * 1.0001), [(x, x + 1e-3)], 1):
                break


# --------------------------------------------------------------------------------------------
# The whole scene
# --------------------------------------------------------------------------------------------
def _sample_light(rng: np.random.Generator, weather: str) -> _Light:
    """Sun position and strength for "sunny", "overcast" or "evening" weather."""
    if weather == "overcast":
        elev, ambient, diffuse, shadow = rng.uniform(60, 85), 0.85, 0.25, rng.uniform(0.08, 0.18)
    elif weather == "evening":
        elev, ambient, diffuse, shadow = rng.uniform(12, 25), 0.5, 0.65, rng.uniform(0.35, 0.5)
    else:
        elev, ambient, diffuse, shadow = rng.uniform(30, 65), 0.55, 0.6, rng.uniform(0.3, 0.5)
    el, az = np.radians(elev), rng.uniform(0, 2 * np.pi)
    sun = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    return _Light(sun, ambient, diffuse, shadow)


def _camera_effects(sc: _Scene) -> np.ndarray:
    """Exposure, contrast, colour temperature, vignetting, lens blur and sensor noise."""
    rng, img, S = sc.rng, sc.canvas.image, sc.canvas.size
    warm = rng.uniform(-0.08, 0.08) + (0.1 if sc.weather == "evening" else 0.0)
    img *= np.array([1 - warm, 1.0, 1 + warm], np.float32) * rng.uniform(0.8, 1.15)
    mean = float(img.mean())
    img[:] = (img - mean) * rng.uniform(0.85, 1.15) + mean
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S - 0.5
        img *= (1 - rng.uniform(0.1, 0.35) * (xx**2 + yy**2) * 2)[..., None]
    if rng.random() < 0.8:
        img[:] = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.35, 1.0) * max(S / 640, 0.5))
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(1.5, 5.0)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _min_area(size: int) -> int:
    return max(12, int(round(MIN_AREA * (size / 640) ** 2)))


def _render(
    rng: np.random.Generator, size: int, empty_prob: float
) -> Tuple[np.ndarray, List[Dict], str]:
    """render_scene, plus the kind of scene ("street" or "campus") for the file name."""
    kind = "street" if rng.random() < 0.55 else "campus"
    cam = _Camera(
        size=size,
        horizon=size * rng.uniform(0.32, 0.5),
        vp_x=size * rng.uniform(0.3, 0.7),
        focal=size * rng.uniform(0.85, 1.15),
        height=rng.uniform(1.35, 1.8),
    )
    weather = str(rng.choice(["sunny", "sunny", "overcast", "evening"]))
    layout = _sample_layout(rng, kind)
    sc = _Scene(
        rng,
        _Canvas(size),
        cam,
        _sample_light(rng, weather),
        layout,
        weather,
        max(3.0, 6.0 * size / 640),
    )
    _paint_sky(sc)
    _paint_ground(sc)
    _paint_far_row(sc)
    if kind == "street":
        _paint_side_buildings(sc)
    things = _plan(sc, empty_prob)
    _paint_shadows(sc, things)
    order = sorted(range(len(things)), key=lambda i: -things[i].Z)
    for i in order:
        _DRAW[things[i].kind](sc, things[i], i if things[i].category_id else -1)
    image = _camera_effects(sc)
    return image, _visible_instances(sc, things), kind


def _visible_instances(sc: _Scene, things: List[_Thing]) -> List[Dict]:
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    instances = []
    for i, t in enumerate(things):
        if not t.category_id or i not in sc.canvas.silhouettes:
            continue
        # slivers one pixel wide are not something an annotator would trace
        visible = cv2.morphologyEx((sc.canvas.owner == i).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        if int(visible.sum()) >= _min_area(sc.canvas.size):
            instances.append(
                {
                    "category_id": t.category_id,
                    "mask": visible.astype(bool),
                    "full_mask": sc.canvas.silhouettes[i],
                }
            )
    return instances


def render_scene(
    rng: np.random.Generator, size: int = 640, empty_prob: float = EMPTY_PROB
) -> Tuple[np.ndarray, List[Dict]]:
    """Draws one street or campus scene with poles and trash cans.

    Args:
        rng: the only source of randomness; the same generator state gives the same scene.
        size: side of the square image, px.
        empty_prob: probability that the scene holds no pole or trash can at all.

    Returns:
        (image, instances): image is an ndarray[size, size, 3] of uint8 (BGR); instances is a
        list of dicts with "category_id" (1 pole, 2 trash can), "mask" (ndarray[size, size] of
        bool, the visible part) and "full_mask" (ndarray[size, size] of bool, the whole shape as
        if nothing stood in front of it). Instances whose visible part is smaller than ~60 px
        (at 640 px, scaled with the image area) are left out.
    """
    image, instances, _ = _render(rng, size, empty_prob)
    return image, instances


# --------------------------------------------------------------------------------------------
# Masks to COCO polygons
# --------------------------------------------------------------------------------------------
def _signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _offset_outwards(p: np.ndarray, dist: float) -> np.ndarray:
    """Moves every vertex of closed polygon ``p`` (ndarray[N, 2]) outwards by ``dist`` (mitred)."""
    edge = np.roll(p, -1, axis=0) - p
    edge /= np.maximum(np.linalg.norm(edge, axis=1, keepdims=True), 1e-9)
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1) * (1.0 if _signed_area(p) > 0 else -1.0)
    prev = np.roll(normal, 1, axis=0)
    miter = (normal + prev) / np.maximum(1.0 + np.sum(normal * prev, axis=1, keepdims=True), 0.5)
    return p + dist * miter


def _contour_polygon(contour: np.ndarray, epsilon: float) -> Optional[np.ndarray]:
    """A contour of pixel indices -> polygon along the pixels' outer edges (COCO coordinates, in
    which pixel (i, j) covers [i, i+1] x [j, j+1]); None if it has fewer than 3 points."""
    approx = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
    if len(approx) < 3:
        approx = contour.reshape(-1, 2)
    if len(approx) < 3:
        return None
    return _offset_outwards(approx.astype(np.float64) + 0.5, 0.5)


def instance_to_annotation(
    mask: np.ndarray, min_area: int = MIN_AREA, epsilon: float = 0.6
) -> Optional[Dict]:
    """Turns an instance mask into a COCO polygon annotation.

    Every outer contour of the mask becomes one polygon, lightly simplified (``epsilon`` px) and
    traced along the outer edges of the boundary pixels, so that rasterizing the polygons with
    pycocotools gives back the mask. Parts smaller than ~15% of ``min_area`` are dropped.

    Args:
        mask: ndarray[H, W] of bool, the instance's visible pixels.
        min_area: masks with fewer pixels give None.
        epsilon: largest distance (px) between a simplified polygon and the contour.

    Returns:
        {"segmentation": list of flat [x1, y1, x2, y2, ...] lists (each >= 3 points, inside the
        image), "bbox": [x, y, w, h] of the polygons, "area": polygon area}, or None if the mask is
        too small.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"instance_to_annotation: expected a 2-D mask, got shape {mask.shape}")
    if int(mask.sum()) < min_area:
        return None
    h, w = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        poly = _contour_polygon(contour, epsilon)
        if poly is None:
            continue
        poly = np.round(np.clip(poly, 0, (w, h)), 2)
        if abs(_signed_area(poly)) >= max(4.0, 0.15 * min_area):
            polygons.append(poly)
    if not polygons:
        return None
    pts = np.vstack(polygons)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return {
        "segmentation": [p.ravel().tolist() for p in polygons],
        "bbox": [float(x0), float(y0), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
        "area": round(sum(abs(_signed_area(p)) for p in polygons), 2),
    }


# --------------------------------------------------------------------------------------------
# The export on disk
# --------------------------------------------------------------------------------------------
def _split_counts(num_images: int, fractions: Sequence[float]) -> Dict[str, int]:
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split_fractions must be three non-negative numbers for {SPLITS} that sum to 1, "
            f"got {tuple(fractions)}"
        )
    counts = {
        "train": int(round(num_images * fractions[0])),
        "valid": int(round(num_images * fractions[1])),
    }
    counts["test"] = num_images - counts["train"] - counts["valid"]
    for split, frac in zip(SPLITS, fractions):
        if frac > 0 and counts[split] <= 0:
            raise ValueError(
                f"num_images={num_images} leaves no image for the {split!r} split "
                f"({frac:.0%}); ask for more images"
            )
    return counts


def _is_export_entry(root: str, name: str) -> bool:
    path = os.path.join(root, name)
    if os.path.isfile(path):
        return name.startswith("README") and name.endswith(".txt")
    if name not in SPLITS or not os.path.isdir(path):
        return False
    for entry in os.listdir(path):
        if entry != ANNOTATION_FILE and not entry.lower().endswith((".jpg", ".jpeg", ".png")):
            return False
    return True


def _prepare_out_dir(out_dir: str) -> None:
    """Creates ``out_dir`` or empties an earlier export in it; refuses to delete anything else."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir}: is a file, not a folder; choose another --out")
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
        return
    for name in sorted(os.listdir(out_dir)):
        if not _is_export_entry(out_dir, name):
            raise FileExistsError(
                f"{out_dir}: holds {name!r}, which is not part of a Roboflow export; "
                "choose an empty or new folder for --out, or remove it"
            )
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _file_name(kind: str, seed: int, index: int) -> str:
    """Roboflow-style file name, e.g. street_0007_jpg.rf.3f9c0a51d2e84b76.jpg; the hex digits
    are a hash of seed and index."""
    digest = hashlib.sha256(f"trashpole-synthetic/{seed}/{index}".encode()).hexdigest()[:16]
    return f"{kind}_{index:04d}_jpg.rf.{digest}.jpg"


def _date_captured(seed: int, index: int) -> str:
    offset = int(hashlib.sha256(f"date/{seed}/{index}".encode()).hexdigest()[:8], 16) % (90 * 86400)
    start = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)
    return (start + datetime.timedelta(seconds=offset)).isoformat()


def _empty_coco(seed: int) -> Dict:
    return {
        "info": {
            "year": "2024",
            "version": "1",
            "description": f"trashpole synthetic street and campus scenes (seed {seed})",
            "contributor": "trashpole",
            "url": "",
            "date_created": "2024-06-01T00:00:00+00:00",
        },
        "licenses": [
            {"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}
        ],
        "categories": [dict(c) for c in CATEGORIES],
        "images": [],
        "annotations": [],
    }


def make_roboflow_export(
    out_dir: str,
    num_images: int = 200,
    seed: int = 0,
    image_size: int = 640,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> Dict[str, int]:
    """Writes a synthetic data set in Roboflow's COCO segmentation export layout.

    ``out_dir/{train,valid,test}/`` each get ``_annotations.coco.json`` and the JPEGs. Image ``i``
    depends only on (seed, i), and the split of every image on the seed, so the same arguments
    give byte-identical files. An earlier export in ``out_dir`` is replaced.

    Args:
        out_dir: destination folder; must be absent, empty or an earlier export.
        num_images: images over all splits.
        seed: non-negative random seed.
        image_size: side of the square images, px.
        split_fractions: shares of (train, valid, test).

    Returns:
        Number of images per split, e.g. {"train": 160, "valid": 20, "test": 20}.

    Raises:
        FileExistsError: ``out_dir`` holds something that is not part of an export.
        ValueError: bad arguments (negative seed, splits that get no image, ...).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 px, got {image_size}")
    counts = _split_counts(num_images, split_fractions)
    _prepare_out_dir(out_dir)
    order = np.random.default_rng(seed).permutation(num_images)
    bounds = np.cumsum([counts[s] for s in SPLITS])
    split_of = {
        int(index): SPLITS[int(np.searchsorted(bounds, pos, side="right"))]
        for pos, index in enumerate(order)
    }
    cocos = {s: _empty_coco(seed) for s in SPLITS if counts[s] > 0}
    for s in cocos:
        os.makedirs(os.path.join(out_dir, s))
    for index in range(num_images):
        _add_image(cocos[split_of[index]], out_dir, split_of[index], seed, index, image_size)
        if (index + 1) % 50 == 0 or index + 1 == num_images:
            logger.info(
                "synthetic export: %d/%d images written to %s", index + 1, num_images, out_dir
            )
    for s, coco in cocos.items():
        write_json(coco, os.path.join(out_dir, s, ANNOTATION_FILE), indent=None)
    _write_readme(out_dir, num_images, seed, image_size)
    return counts


def _add_image(coco: Dict, out_dir: str, split: str, seed: int, index: int, size: int) -> None:
    rng = np.random.default_rng([seed, index])
    image, instances, kind = _render(rng, size, EMPTY_PROB)
    name = _file_name(kind, seed, index)
    quality = int(rng.integers(72, 96))
    path = os.path.join(out_dir, split, name)
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"{path}: could not write the JPEG")
    image_id = len(coco["images"])
    coco["images"].append(
        {
            "id": image_id,
            "license": 1,
            "file_name": name,
            "height": size,
            "width": size,
            "date_captured": _date_captured(seed, index),
        }
    )
    for inst in instances:
        ann = instance_to_annotation(inst["mask"], _min_area(size))
        if ann is not None:
            ann = {
                "id": len(coco["annotations"]),
                "image_id": image_id,
                "category_id": inst["category_id"],
                **ann,
                "iscrowd": 0,
            }
            coco["annotations"].append(ann)


def _write_readme(out_dir: str, num_images: int, seed: int, size: int) -> None:
    with open(os.path.join(out_dir, "README.dataset.txt"), "w") as f:
        f.write(
            "trashpole synthetic data set\n"
            f"{num_images} street and campus scenes, {size}x{size} px, seed {seed}.\n"
            "Drawn by trashpole.data.synthetic as a stand-in for the real campus photos;\n"
            "classes: pole, trash-can (COCO segmentation, Roboflow export layout).\n"
        )


def _class_counts(out_dir: str) -> Dict[str, Dict[str, int]]:
    """Per split: number of images and of instances per class name."""
    names = {c["id"]: c["name"] for c in CATEGORIES}
    table = {}
    for s in SPLITS:
        path = os.path.join(out_dir, s, ANNOTATION_FILE)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            coco = json.load(f)
        row = {"images": len(coco["images"]), **{n: 0 for n in CLASS_NAMES}}
        for ann in coco["annotations"]:
            row[names[ann["category_id"]]] += 1
        table[s] = row
    return table


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: ``python -m trashpole.data.synthetic --out DIR [--num-images N] ...``."""
    parser = argparse.ArgumentParser(
        description="Write the synthetic trashpole data set (Roboflow COCO layout)."
    )
    parser.add_argument(
        "--out", required=True, help="destination folder (absent, empty, or an earlier export)"
    )
    parser.add_argument(
        "--num-images", type=int, default=200, help="images over all splits (80/10/10)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same files"
    )
    parser.add_argument("--image-size", type=int, default=640, help="side of the square images, px")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        make_roboflow_export(args.out, args.num_images, args.seed, args.image_size)
    except (FileExistsError, ValueError) as exc:
        parser.error(str(exc))
    print(f"Synthetic Roboflow export in {os.path.abspath(args.out)}")
    for split, row in _class_counts(args.out).items():
        classes = ", ".join(f"{row[n]} {n}" for n in CLASS_NAMES)
        print(f"  {split:5s}: {row['images']:4d} images, {classes}")


if __name__ == "__main__":
    main()
