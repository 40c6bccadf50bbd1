"""Trees, bushes and cars that stand between the camera and the objects, and the shadows."""

from typing import List

import cv2
import numpy as np

from synthetic.bins import draw_box, draw_round, draw_wheelie
from synthetic.poles import draw_lamp, draw_plain, draw_sign, draw_signal
from synthetic.scene import (
    CAR_COLORS,
    Color,
    Scene,
    Thing,
    cylinder_shade,
    ellipse,
    fill_box,
    front_quad,
    jitter,
    scaled,
    side_quad,
    upright,
)


def sample_scenery(rng: np.random.Generator, kind: str) -> Thing:
    if kind == "tree":
        crown, trunk = rng.uniform(1.5, 3.2), rng.uniform(0.2, 0.4)
        green = jitter(rng, (46, 110, 62) if rng.random() < 0.7 else (40, 120, 110), 0.2)
        style = {"trunk_w": trunk, "crown_h": rng.uniform(2.2, 3.5), "green": green}
        style["seed"] = int(rng.integers(1 << 30))
        return Thing("tree", 0, 0.0, 1.0, 2 * crown, trunk, style["crown_h"] + 2 * crown, style)
    if kind == "bush":
        w, h = rng.uniform(0.8, 2.6), rng.uniform(0.5, 1.2)
        green = jitter(rng, (40, 98, 50), 0.2)
        style = {"seed": int(rng.integers(1 << 30)), "green": green, "flowers": rng.random() < 0.2}
        return Thing("bush", 0, 0.0, 1.0, w, w * 0.6, h, style)
    style = {"color": jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 0.08)}
    size = rng.uniform(1.7, 1.9), rng.uniform(4.0, 4.6), rng.uniform(1.4, 1.6)
    return Thing("car", 0, 0.0, 1.0, *size, style)


def _blob_cluster(sc: Scene, cx, cy, rx, ry, n: int, green: Color, rng: np.random.Generator):
    """Foliage: overlapping ellipses, darker on the side away from the sun and underneath."""
    sx = sc.light.sun[0]
    for _ in range(n):
        dx, dy = rng.uniform(-0.65, 0.65), rng.uniform(-0.6, 0.6)
        r = rng.uniform(0.35, 0.6)
        light = 0.85 + 0.25 * dx * np.sign(sx) - 0.2 * dy + rng.uniform(-0.1, 0.1)
        pts = ellipse(cx + dx * rx, cy + dy * ry, r * rx, r * ry * rng.uniform(0.8, 1.2), n=20)
        sc.canvas.fill(pts, scaled(green, light))


def _draw_tree(sc: Scene, t: Thing, owner: int) -> None:
    rng, st = np.random.default_rng(t.style["seed"]), t.style
    k = sc.cam.focal / t.Z
    xf, yf = t.foot(sc.cam)
    tw = max(2.0, st["trunk_w"] * k)
    crown_y = yf - (st["crown_h"] + t.width / 2 * 0.8) * k
    trunk = upright(xf, yf, crown_y, tw, tw * 0.7, tw / 2 * sc.cam.height / t.Z)
    sc.canvas.fill(trunk, (42, 58, 80), -1, cylinder_shade(xf - tw / 2, xf + tw / 2, sc.light))
    rx = t.width / 2 * k
    _blob_cluster(sc, xf, crown_y, rx, rx * 0.85, int(rng.integers(8, 14)), st["green"], rng)


def _draw_bush(sc: Scene, t: Thing, owner: int) -> None:
    rng, st = np.random.default_rng(t.style["seed"]), t.style
    k = sc.cam.focal / t.Z
    xf, yf = t.foot(sc.cam)
    rx, ry = t.width / 2 * k, t.height / 2 * k
    for u in np.linspace(-0.7, 0.7, 4):  # a darker row touching the ground, mostly covered
        bottom = ellipse(xf + u * rx, yf - 0.3 * ry, 0.35 * rx, 0.3 * ry, n=20)
        sc.canvas.fill(bottom, scaled(st["green"], 0.65))
    _blob_cluster(sc, xf, yf - 1.05 * ry, rx, ry, int(rng.integers(7, 12)), st["green"], rng)
    if st["flowers"]:
        r = max(1.0, 0.04 * k)
        color = [(180, 120, 230), (60, 210, 240), (235, 235, 240)][rng.integers(3)]
        for _ in range(int(rng.integers(8, 20))):
            x, y = xf + rng.uniform(-0.8, 0.8) * rx, yf - ry + rng.uniform(-0.8, 0.6) * ry
            sc.canvas.fill(ellipse(x, y, r, r, n=8), color)


def _draw_car(sc: Scene, t: Thing, owner: int) -> None:
    """A parked or waiting car seen from behind (and from the side when off-centre)."""
    cam, color, h = sc.cam, t.style["color"], t.height
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    for a, b in ((x0 + 0.08, x0 + 0.33), (x1 - 0.33, x1 - 0.08)):  # rear wheels
        fill_box(sc, (a, b, 0.0, 0.6, z0 + 0.6, z0 + 0.9), (26, 26, 26), -1)
    fill_box(sc, (x0, x1, 0.25, 0.95, z0, z1), color, -1)
    cabin = (x0 + 0.12, x1 - 0.12, 0.95, h, z0 + 0.7, z1 - 1.1)
    fill_box(sc, cabin, color, -1)
    glass = (70, 60, 50)
    sc.canvas.fill(front_quad(cam, x0 + 0.22, x1 - 0.22, 1.0, h - 0.08, z0 + 0.7), glass)
    side = cabin[0] if cabin[0] > 0 else cabin[1] if cabin[1] < 0 else None
    if side is not None:  # side windows on the cabin face turned to the camera
        sc.canvas.fill(side_quad(cam, side, 1.0, h - 0.08, z0 + 0.8, z1 - 1.2), glass)
    front = sc.light.face((0, 0, -1))
    sc.canvas.fill(front_quad(cam, x0, x1, 0.25, 0.42, z0 - 0.02), scaled((40, 40, 42), front))
    for a, b in ((x0 + 0.05, x0 + 0.35), (x1 - 0.35, x1 - 0.05)):
        sc.canvas.fill(front_quad(cam, a, b, 0.7, 0.85, z0 - 0.01), (40, 40, 200))
    sc.canvas.fill(front_quad(cam, t.X - 0.26, t.X + 0.26, 0.47, 0.58, z0 - 0.01), (225, 225, 225))


DRAW = {
    "lamp": draw_lamp,
    "sign": draw_sign,
    "signal": draw_signal,
    "plain": draw_plain,
    "round": draw_round,
    "box": draw_box,
    "wheelie": draw_wheelie,
    "tree": _draw_tree,
    "bush": _draw_bush,
    "car": _draw_car,
}


def paint_shadows(sc: Scene, things: List[Thing]) -> None:
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
        contact = ellipse(*t.foot(cam), max(w, 0.2) * k * 0.7, 0.1 * k)
        cv2.fillPoly(
            shadow, [np.round(contact * 8).astype(np.int32)], 0.45, lineType=cv2.LINE_8, shift=3
        )
    shadow[: max(0, int(cam.horizon))] = 0
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.8, 1.5 * S / 640))
    sc.canvas.image *= (1 - np.clip(shadow, 0, 0.8))[..., None]
