"""Trash cans: round bins, square bins and wheelie bins."""

import numpy as np

from synthetic.scene import (
    BIN_COLORS,
    INK,
    TRASH_CAN,
    Camera,
    Scene,
    Shade,
    Thing,
    cylinder_shade,
    ellipse,
    fill_box,
    front_quad,
    jitter,
    rect,
    scaled,
    thick_line,
)


class _Drum:
    """Image geometry of an upright, possibly tapered, round bin standing at ``t``'s spot.

    Horizontal circles below eye level are seen from above as ellipses whose half-height shrinks
    as they approach eye level: ``half_height(h) = radius(h) * (eye height - h) / Z``.
    """

    def __init__(self, cam: Camera, t: Thing):
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
        return ellipse(self.xc, self.y(h), self.radius(h), self.half_height(h), t0, t1, 16)

    def ring(self, h0: float, h1: float) -> np.ndarray:
        """The visible band of the side between heights h0 < h1 (m), as a polygon."""
        return np.vstack([self.rim(h0, 0, np.pi), self.rim(h1, np.pi, 0)])


def sample_can(rng: np.random.Generator) -> Thing:
    kind = str(rng.choice(["round", "round", "box", "wheelie", "wheelie"]))
    color = jitter(rng, BIN_COLORS[str(rng.choice(list(BIN_COLORS)))], 0.1)
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
            bag_color=jitter(rng, (32, 32, 34) if rng.random() < 0.6 else (150, 150, 145)),
        )
        depth = width
    elif kind == "box":
        width, depth, height = (
            rng.uniform(0.45, 0.75),
            rng.uniform(0.35, 0.6),
            rng.uniform(0.85, 1.2),
        )
        style.update(
            lid_color=jitter(rng, color, 0.25), slot=rng.random() < 0.6, grooves=rng.random() < 0.3
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
            else BIN_COLORS[str(rng.choice(["yellow", "blue", "green", "red"]))]
        )
        style.update(lid_color=jitter(rng, lid, 0.05))
    return Thing(kind, TRASH_CAN, 0.0, 1.0, width, depth, height, style)


def draw_round(sc: Scene, t: Thing, owner: int) -> None:
    st = t.style
    cyl = _Drum(sc.cam, t)
    shade = cylinder_shade(cyl.xc - cyl.radius(t.height), cyl.xc + cyl.radius(t.height), sc.light)
    top, bottom = cyl.rim(t.height, np.pi, 2 * np.pi), cyl.rim(0.0, 0, np.pi)
    sc.canvas.fill(np.vstack([top, bottom]), st["color"], owner, shade)
    for i in range(st["ribs"]):
        h = t.height * (0.25 + 0.5 * i)
        sc.canvas.fill(cyl.ring(h, h + 0.04), scaled(st["color"], 0.75), owner, shade)
    if st["slats"]:  # a wooden bin: vertical gaps between the slats
        for u in np.linspace(-0.9, 0.9, 9):
            top_y = cyl.y(t.height) + cyl.half_height(t.height) * np.sqrt(1 - u * u)
            bottom_y = cyl.y(0.0) + cyl.half_height(0.0) * np.sqrt(1 - u * u)
            x = cyl.xc + u * cyl.radius(t.height)
            gap = thick_line(np.array([[x, top_y], [x, bottom_y]]), max(1.0, 0.012 * cyl.k))
            sc.canvas.fill(gap, scaled(st["color"], 0.55), owner)
    if st["label"]:
        w, y = cyl.radius(0.55 * t.height) * 0.45, cyl.y(0.55 * t.height)
        sc.canvas.fill(
            rect(cyl.xc - w, y - 0.2 * cyl.k, cyl.xc + w, y), st["label_color"], owner, shade
        )
    _round_top(sc, t, owner, cyl, shade)


def _round_top(sc: Scene, t: Thing, owner: int, cyl: "_Drum", shade: Shade) -> None:
    """Flat lid, dome lid, open top, or a bin bag folded over the rim (maybe overflowing)."""
    st, top, k = t.style, t.style["top"], cyl.k
    xc, y_top, r, b = cyl.xc, cyl.y(t.height), cyl.radius(t.height), cyl.half_height(t.height)
    if top == "flat":
        sc.canvas.fill(cyl.ring(t.height - 0.05, t.height), scaled(st["color"], 0.85), owner, shade)
        lid = scaled(st["color"], sc.light.face((0, 1, 0)) * 1.1)
        sc.canvas.fill(ellipse(xc, y_top, r, b), lid, owner)
    elif top == "dome":
        dome = ellipse(xc, y_top, r * 1.03, 0.22 * k, np.pi, 2 * np.pi, 18)
        sc.canvas.fill(
            np.vstack([dome, ellipse(xc, y_top, r * 1.03, b, 0, np.pi, 12)]),
            st["color"],
            owner,
            shade,
        )
        sc.canvas.fill(ellipse(xc, y_top - 0.1 * k, r * 0.4, max(1.0, 0.05 * k)), INK, owner)
    else:
        bagged = top in ("bag", "overflow")
        sc.canvas.fill(
            ellipse(xc, y_top, r, b),
            st["bag_color"] if bagged else scaled(st["color"], 0.9),
            owner,
        )
        sc.canvas.fill(ellipse(xc, y_top, r * 0.88, b * 0.85), (22, 22, 24), owner)
        if bagged:
            sc.canvas.fill(cyl.ring(t.height - 0.12, t.height), st["bag_color"], owner, shade)
        if top == "overflow":
            ang = np.linspace(np.pi, 2 * np.pi, 14)
            bulge = 0.18 * k * (1 + 0.25 * np.sin(ang * 5 + t.X))
            pts = np.stack([xc + r * 0.9 * np.cos(ang), y_top + bulge * np.sin(ang)], axis=1)
            sc.canvas.fill(pts, st["bag_color"], owner, shade)


def draw_box(sc: Scene, t: Thing, owner: int) -> None:
    st = t.style
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    body_h = t.height - 0.08
    fill_box(sc, (x0, x1, 0.0, body_h, z0, z1), st["color"], owner)
    front = sc.light.face((0, 0, -1))
    if st["grooves"]:
        for u in np.linspace(0.15, 0.85, 5):
            x = x0 + u * t.width
            pts = front_quad(sc.cam, x - 0.012, x + 0.012, 0.1, body_h - 0.1, z0)
            sc.canvas.fill(pts, scaled(st["color"], front * 0.7), owner)
    if st["slot"]:
        pts = front_quad(
            sc.cam, x0 + 0.15 * t.width, x1 - 0.15 * t.width, body_h - 0.2, body_h - 0.1, z0
        )
        sc.canvas.fill(pts, (22, 22, 24), owner)
    if st["label"]:
        pts = front_quad(sc.cam, t.X - 0.12, t.X + 0.12, 0.35, 0.6, z0)
        sc.canvas.fill(pts, scaled(st["label_color"], front), owner)
    fill_box(
        sc, (x0 - 0.03, x1 + 0.03, body_h, t.height, z0 - 0.03, z1 + 0.03), st["lid_color"], owner
    )


def draw_wheelie(sc: Scene, t: Thing, owner: int) -> None:
    cam, st = sc.cam, t.style
    x0, x1, z0, z1 = t.X - t.width / 2, t.X + t.width / 2, t.Z, t.Z + t.depth
    h = t.height - 0.07  # body; the lid sits on top
    for xw in (x0 - 0.03, x1 + 0.03):  # wheels at the back, partly behind the body
        cx, cy = (float(v) for v in cam.project(xw, 0.11, z1 - 0.12))
        r = 0.11 * cam.focal / (z1 - 0.12)
        sc.canvas.fill(ellipse(cx, cy, r * 0.45, r), (28, 28, 28), owner)
    # the body narrows towards the bottom: bottom corners are set in by 5 cm
    bx0, bx1, bz0 = x0 + 0.05, x1 - 0.05, z0 + 0.05
    faces = [([(bx0, 0, bz0), (bx1, 0, bz0), (x1, h, z0), (x0, h, z0)], (0, 0, -1))]
    if x0 > 0:
        faces.append(([(bx0, 0, bz0), (bx0, 0, z1), (x0, h, z1), (x0, h, z0)], (-1, 0, 0)))
    if x1 < 0:
        faces.append(([(bx1, 0, bz0), (bx1, 0, z1), (x1, h, z1), (x1, h, z0)], (1, 0, 0)))
    for pts, normal in faces[::-1]:
        sc.canvas.fill(cam.points(pts), scaled(st["color"], sc.light.face(normal)), owner)
    front = sc.light.face((0, 0, -1))
    panel = front_quad(cam, x0 + 0.08, x1 - 0.08, 0.25, h - 0.2, z0 + 0.02)
    sc.canvas.fill(panel, scaled(st["color"], front * 0.88), owner)
    if st["label"]:
        label = front_quad(cam, t.X - 0.1, t.X + 0.1, 0.55, 0.7, z0)
        sc.canvas.fill(label, scaled(st["label_color"], front), owner)
    fill_box(sc, (x0 - 0.02, x1 + 0.02, h, t.height, z0 - 0.05, z1 + 0.02), st["lid_color"], owner)
    handle = front_quad(cam, x0 + 0.05, x1 - 0.05, t.height, t.height + 0.04, z1)
    sc.canvas.fill(handle, scaled(st["lid_color"], 0.7), owner)
