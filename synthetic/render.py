"""One scene from a seed: light, plan, painting far to near, camera effects, visible instances.

High-resolution photos (``far_objects``, ``height``): the scene is drawn at its full size, not as
a 640 px scene scaled up; poles and trash cans are added far down the street, a few pixels wide,
and the square picture is cut to ``height`` rows (a pinhole picture cut to a smaller frame is
still one: the horizon ends up at 45% of the height).
"""

from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from synthetic.background import (
    paint_far_row,
    paint_ground,
    paint_side_buildings,
    paint_sky,
)
from synthetic.layout import plan, plan_far, sample_layout
from synthetic.scene import (
    EMPTY_PROB,
    MIN_AREA,
    Camera,
    Canvas,
    Light,
    Scene,
    Thing,
)
from synthetic.scenery import DRAW, paint_shadows

# far_objects: the thinnest pole drawn and the lens blur's scale, in px at any image size (a
# 640 px scene scales both with the image).
FAR_MIN_PX = 3.0
FAR_BLUR_SCALE = 1.0
# far_objects: the buildings at the back stand this many times further away (a long street).
FAR_DEPTH_SCALE = 2.5
# far_objects: the horizon's row in a picture cut to ``height``, as a share of the height.
HORIZON_AT = 0.45


def _sample_light(rng: np.random.Generator, weather: str) -> Light:
    """Sun position and strength for "sunny", "overcast" or "evening" weather."""
    if weather == "overcast":
        elev, ambient, diffuse, shadow = rng.uniform(60, 85), 0.85, 0.25, rng.uniform(0.08, 0.18)
    elif weather == "evening":
        elev, ambient, diffuse, shadow = rng.uniform(12, 25), 0.5, 0.65, rng.uniform(0.35, 0.5)
    else:
        elev, ambient, diffuse, shadow = rng.uniform(30, 65), 0.55, 0.6, rng.uniform(0.3, 0.5)
    el, az = np.radians(elev), rng.uniform(0, 2 * np.pi)
    sun = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    return Light(sun, ambient, diffuse, shadow)


def _camera_effects(sc: Scene, blur_scale: float) -> np.ndarray:
    """Exposure, contrast, colour temperature, vignetting, lens blur (its sigma times
    ``blur_scale``) and sensor noise."""
    rng, img, S = sc.rng, sc.canvas.image, sc.canvas.size
    warm = rng.uniform(-0.08, 0.08) + (0.1 if sc.weather == "evening" else 0.0)
    img *= np.array([1 - warm, 1.0, 1 + warm], np.float32) * rng.uniform(0.8, 1.15)
    mean = float(img.mean())
    img[:] = (img - mean) * rng.uniform(0.85, 1.15) + mean
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S - 0.5
        img *= (1 - rng.uniform(0.1, 0.35) * (xx**2 + yy**2) * 2)[..., None]
    if rng.random() < 0.8:
        img[:] = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.35, 1.0) * blur_scale)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(1.5, 5.0)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def scaled_min_area(size: int, far_objects: bool = False) -> int:
    """Smallest visible instance kept, px: MIN_AREA scaled with the image area, or MIN_AREA
    itself for a high-resolution scene with far objects."""
    if far_objects:
        return MIN_AREA
    return max(12, int(round(MIN_AREA * (size / 640) ** 2)))


def draw_scene(
    rng: np.random.Generator,
    size: int,
    empty_prob: float,
    far_objects: bool = False,
    height: Optional[int] = None,
) -> Tuple[np.ndarray, List[Dict], str]:
    """render_scene, plus the kind of scene ("street" or "campus") for the file name."""
    kind = "street" if rng.random() < 0.55 else "campus"
    cam = Camera(
        size=size,
        horizon=size * rng.uniform(0.32, 0.5),
        vp_x=size * rng.uniform(0.3, 0.7),
        focal=size * rng.uniform(0.85, 1.15),
        height=rng.uniform(1.35, 1.8),
    )
    weather = str(rng.choice(["sunny", "sunny", "overcast", "evening"]))
    layout = sample_layout(rng, kind)
    if far_objects:  # a long view: the buildings at the back stand further away
        layout.far_depth *= FAR_DEPTH_SCALE
    min_px = FAR_MIN_PX if far_objects else max(3.0, 6.0 * size / 640)
    sc = Scene(rng, Canvas(size), cam, _sample_light(rng, weather), layout, weather, min_px)
    paint_sky(sc)
    paint_ground(sc)
    paint_far_row(sc)
    if kind == "street":
        paint_side_buildings(sc)
    things = plan(sc, empty_prob)
    if far_objects:
        plan_far(sc, things)
    paint_shadows(sc, things)
    order = sorted(range(len(things)), key=lambda i: -things[i].Z)
    for i in order:
        DRAW[things[i].kind](sc, things[i], i if things[i].category_id else -1)
    image = _camera_effects(sc, FAR_BLUR_SCALE if far_objects else max(size / 640, 0.5))
    instances = _visible_instances(sc, things, scaled_min_area(size, far_objects))
    if height is not None and height < size:
        top = int(np.clip(round(cam.horizon - HORIZON_AT * height), 0, size - height))
        image, instances = _cut_rows(image, instances, top, height, far_objects)
    return image, instances, kind


def _cut_rows(
    image: np.ndarray, instances: List[Dict], top: int, height: int, far_objects: bool
) -> Tuple[np.ndarray, List[Dict]]:
    """The picture's rows ``top`` to ``top + height``, and the instances still large enough."""
    rows = slice(top, top + height)
    kept = []
    for inst in instances:
        inst = {**inst, "mask": inst["mask"][rows], "full_mask": inst["full_mask"][rows]}
        if int(inst["mask"].sum()) >= scaled_min_area(image.shape[1], far_objects):
            kept.append(inst)
    return np.ascontiguousarray(image[rows]), kept


def _visible_instances(sc: Scene, things: List[Thing], min_area: int) -> List[Dict]:
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    instances = []
    for i, t in enumerate(things):
        if not t.category_id or i not in sc.canvas.silhouettes:
            continue
        # slivers one pixel wide are not something an annotator would trace
        visible = cv2.morphologyEx((sc.canvas.owner == i).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        if int(visible.sum()) >= min_area:
            instances.append(
                {
                    "category_id": t.category_id,
                    "mask": visible.astype(bool),
                    "full_mask": sc.canvas.silhouettes[i],
                }
            )
    return instances


def render_scene(
    rng: np.random.Generator,
    size: int = 640,
    empty_prob: float = EMPTY_PROB,
    far_objects: bool = False,
    height: Optional[int] = None,
) -> Tuple[np.ndarray, List[Dict]]:
    """Draws one street or campus scene with poles and trash cans.

    Args:
        rng: the only source of randomness; the same generator state gives the same scene.
        size: side of the square scene, px: the image's width.
        empty_prob: probability that the scene holds no pole or trash can at all.
        far_objects: a high-resolution photo: more poles and trash cans far down the street,
            a few pixels wide; the thinnest pole, the lens blur and the smallest instance kept in
            px at any size (see the module docstring). False draws the same scene at any size.
        height: cut the picture to this many rows (None: square).

    Returns:
        (image, instances): image is an ndarray[height, size, 3] of uint8 (BGR); instances is a
        list of dicts with "category_id" (1 pole, 2 trash can), "mask" (ndarray[height, size] of
        bool, the visible part) and "full_mask" (ndarray[height, size] of bool, the whole shape as
        if nothing stood in front of it). Instances whose visible part is smaller than ~60 px
        (at 640 px, scaled with the image area; 60 px at any size with ``far_objects``) are left
        out.
    """
    image, instances, _ = draw_scene(rng, size, empty_prob, far_objects, height)
    return image, instances
