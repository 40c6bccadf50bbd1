"""The world every scene is drawn in: data set constants, palettes, camera, light, canvas and
the primitives shared by the painters."""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

CATEGORIES = [
    {"id": 0, "name": "trash-poles", "supercategory": "none"},
    {"id": 1, "name": "pole", "supercategory": "trash-poles"},
    {"id": 2, "name": "trash-can", "supercategory": "trash-poles"},
]
CLASS_NAMES = ["pole", "trash-can"]
POLE, TRASH_CAN = 1, 2  # Roboflow category ids
MIN_AREA = 60  # smallest visible instance kept, in px at 640x640 (scaled with the image area)
EMPTY_PROB = 0.03  # share of scenes without any pole or trash can, as real exports have

Color = Tuple[float, float, float]  # BGR, 0-255
Shade = Callable[[np.ndarray], np.ndarray]  # column centres (px) -> brightness factors

POLE_COLORS: Dict[str, Color] = {
    "grey": (128, 128, 124),
    "green": (60, 88, 46),
    "black": (42, 42, 44),
    "galvanised": (170, 172, 168),
    "darkgrey": (80, 78, 74),
    "blue": (96, 66, 44),
}
BIN_COLORS: Dict[str, Color] = {
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
FACADE_COLORS: List[Color] = [
    (60, 78, 142),  # brick
    (150, 178, 198),  # sand
    (152, 152, 148),  # concrete
    (212, 214, 210),  # white render
    (92, 92, 96),  # dark cladding
    (162, 186, 170),  # pastel green
    (120, 140, 175),  # ochre
]
WHITE: Color = (235, 235, 235)
INK: Color = (28, 28, 30)
LAMP_GLOW: Color = (200, 235, 245)
SIGN_RED: Color = (40, 40, 200)
SIGN_BLUE: Color = (160, 90, 30)
BAND_PAINT: Dict[str, Color] = {
    "white": (225, 225, 225),
    "red": (40, 40, 190),
    "yellow": (40, 190, 230),
}
CAR_COLORS: List[Color] = [
    (225, 225, 222),
    (170, 170, 168),
    (40, 40, 42),
    (40, 40, 160),
    (130, 70, 30),
    (90, 90, 92),
]


@dataclass(frozen=True)
class Camera:
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
class Light:
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


def cylinder_shade(x_left: float, x_right: float, light: Light) -> Shade:
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


class Canvas:
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


def ellipse(cx: float, cy: float, a: float, b: float, t0=0.0, t1=2 * np.pi, n=28) -> np.ndarray:
    """Points (ndarray[n, 2]) on an axis-aligned ellipse from angle t0 to t1 (y grows downwards)."""
    t = np.linspace(t0, t1, n)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def upright(xc: float, y_bot: float, y_top: float, w_bot: float, w_top: float, b_bot: float):
    """Silhouette of an upright (tapered) cylinder whose bottom rim is an ellipse of half-height
    ``b_bot``; returns ndarray[N, 2]."""
    bottom = ellipse(xc, y_bot, w_bot / 2, b_bot, 0.0, np.pi, 12)  # right to left, lower half
    return np.vstack([[[xc - w_top / 2, y_top], [xc + w_top / 2, y_top]], bottom])


def thick_line(points: np.ndarray, width: float) -> np.ndarray:
    """Polygon (ndarray[2N, 2]) of a polyline ``points`` (ndarray[N, 2]) drawn ``width`` px wide."""
    p = np.asarray(points, np.float64)
    d = np.gradient(p, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) * (width / 2)
    return np.vstack([p + normal, (p - normal)[::-1]])


def _box_faces(cam: Camera, x0, x1, y0, y1, z0, z1) -> List[Tuple[np.ndarray, Tuple]]:
    """Visible faces of an axis-aligned box as (polygon ndarray[4, 2], outward normal) pairs."""
    quads = [((0, 0, -1), [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)])]
    if cam.height > y1:  # below eye level: the top is seen from above
        quads.append(((0, 1, 0), [(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)]))
    if x0 > 0:  # right of the camera: the left side faces it
        quads.append(((-1, 0, 0), [(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)]))
    if x1 < 0:
        quads.append(((1, 0, 0), [(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)]))
    return [(cam.points(quad), normal) for normal, quad in quads]


def fill_box(sc: "Scene", box: Sequence[float], color: Color, owner: int) -> None:
    """Paints the visible faces of box (x0, x1, y0, y1, z0, z1) lit by the scene's sun."""
    for pts, normal in _box_faces(sc.cam, *box)[::-1]:  # sides and top first, front last
        sc.canvas.fill(pts, scaled(color, sc.light.face(normal)), owner)


def front_quad(cam: Camera, x0, x1, y0, y1, z) -> np.ndarray:
    """Rectangle (x0..x1, y0..y1) on the plane at depth z, as an image polygon ndarray[4, 2]."""
    return cam.points([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])


def side_quad(cam: Camera, x, y0, y1, z0, z1) -> np.ndarray:
    """Rectangle (heights y0..y1, depths z0..z1) on the plane X = x, as an image polygon."""
    return cam.points([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """An axis-aligned rectangle in image coordinates, as a polygon ndarray[4, 2]."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def scaled(color: Color, factor: float) -> Color:
    return tuple(float(min(255.0, c * factor)) for c in color)


def jitter(rng: np.random.Generator, color: Color, amount: float = 0.12) -> Color:
    """The colour with random brightness and slight hue variation."""
    gain = rng.uniform(1 - amount, 1 + amount)
    return tuple(float(np.clip(c * gain * rng.uniform(0.95, 1.05), 0, 255)) for c in color)


@dataclass
class Layout:
    """Where things are on the ground (X ranges in metres)."""

    kind: str  # "street" or "campus"
    road: Optional[Tuple[float, float]] = None
    walks: List[Tuple[float, float]] = field(default_factory=list)  # sidewalks or paths
    plaza_depth: float = 0.0  # campus: paved up to this depth
    cross_path: Optional[Tuple[float, float]] = None  # campus: a path across, Z range
    far_depth: float = 60.0  # depth of the row of buildings at the back


@dataclass
class Scene:
    rng: np.random.Generator
    canvas: Canvas
    cam: Camera
    light: Light
    layout: Layout
    weather: str
    min_px: float  # thinnest pole we draw, px


@dataclass
class Thing:
    """One object in the world: an annotated pole or trash can, or scenery (category 0)."""

    kind: str
    category_id: int
    X: float  # centre, m
    Z: float  # depth of the front face, m
    width: float  # along X, m
    depth: float  # along Z, m
    height: float  # m
    style: dict

    def foot(self, cam: Camera) -> Tuple[float, float]:
        x, y = cam.project(self.X, 0.0, self.Z)
        return float(x), float(y)

    def footprint(self) -> Tuple[float, float]:
        """(width, depth) in metres of what stands on the ground; a tree stands on its trunk."""
        if self.kind == "tree":
            return self.style["trunk_w"], self.depth
        return self.width, self.depth

    def box(self, cam: Camera, min_px: float = 0.0) -> Tuple[float, float, float, float]:
        """Image box (x0, y0, x1, y1) of the object's core (a pole's shaft, a bin's body)."""
        x, y = self.foot(cam)
        k = cam.focal / self.Z
        half = max(self.width * k, min_px) / 2
        return x - half, y - self.height * k, x + half, y
