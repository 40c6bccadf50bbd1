"""Where things stand: sampling a street or campus layout and placing objects without overlap."""

from typing import List, Tuple

import numpy as np

from synthetic.bins import sample_can
from synthetic.poles import sample_pole
from synthetic.scene import POLE, TRASH_CAN, Layout, Scene, Thing
from synthetic.scenery import sample_scenery


def sample_layout(rng: np.random.Generator, kind: str) -> Layout:
    if kind == "street":
        centre, width = rng.uniform(-6, 6), rng.uniform(6, 12)
        lo, hi = centre - width / 2, centre + width / 2
        walks = [(lo - rng.uniform(2.5, 5), lo - 0.18), (hi + 0.18, hi + rng.uniform(2.5, 5))]
        return Layout("street", road=(lo, hi), walks=walks, far_depth=rng.uniform(35, 80))
    centre, width = rng.uniform(-4, 4), rng.uniform(2, 5)
    walks = [(centre - width / 2, centre + width / 2)]
    plaza = rng.uniform(3.5, 9) if rng.random() < 0.6 else 0.0
    z = rng.uniform(8, 20)
    cross = (z, z + rng.uniform(2, 4)) if rng.random() < 0.5 else None
    return Layout(
        "campus", walks=walks, plaza_depth=plaza, cross_path=cross, far_depth=rng.uniform(30, 70)
    )


def _bands(lay: Layout, kind: str) -> List[Tuple[float, float]]:
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


def _overlaps(sc: Scene, t: Thing, others: List[Thing]) -> bool:
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


def _place(sc: Scene, t: Thing, things: List[Thing], z_range, bands=None, tries: int = 30) -> bool:
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


def _depth_range(sc: Scene, t: Thing) -> Tuple[float, float]:
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


def plan(sc: Scene, empty_prob: float) -> List[Thing]:
    """Picks and places the poles, trash cans and scenery of one scene."""
    rng = sc.rng
    things: List[Thing] = []
    if rng.random() >= empty_prob:
        n_poles, n_cans = int(rng.integers(1, 5)), int(rng.choice([0, 1, 1, 2, 2, 3]))
    else:
        n_poles, n_cans = 0, 0
    for _ in range(n_poles):
        t = sample_pole(rng)
        _place(sc, t, things, _depth_range(sc, t))
    poles = [t for t in things if t.category_id == POLE]
    for _ in range(n_cans):
        t = sample_can(rng)
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


def plan_far(sc: Scene, things: List[Thing]) -> None:
    """Adds 2-5 poles and 1-4 trash cans far down the street or across the campus, between 35%
    and 90% of the depth of the buildings at the back (a few pixels wide in a phone photo)."""
    rng, far = sc.rng, sc.layout.far_depth
    n_poles, n_cans = int(rng.integers(2, 6)), int(rng.integers(1, 5))
    for sample in [sample_pole] * n_poles + [sample_can] * n_cans:
        _place(sc, sample(rng), things, (0.35 * far, 0.9 * far))


def _plan_scenery(sc: Scene, things: List[Thing]) -> None:
    """Adds trees, bushes and cars, and sometimes a bush or car right in front of an object."""
    rng, lay = sc.rng, sc.layout
    street = lay.kind == "street"
    counts = {"tree": int(rng.integers(0, 3) if street else rng.integers(1, 5))}
    counts.update(bush=int(rng.integers(0, 3)), car=int(rng.integers(0, 3)) if street else 0)
    z_min = sc.cam.depth_at_row(sc.canvas.size - 3) * 1.05
    for kind, n in counts.items():
        for _ in range(n):
            t = sample_scenery(rng, kind)
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
            t = sample_scenery(rng, kind)
            z = target.Z * rng.uniform(0.45, 0.85) - t.depth
            if z <= z_min:
                continue
            side = rng.choice([-1, 1])
            x = target.X + side * (target.width + t.width) / 2 * rng.uniform(0.2, 0.9)
            if _place(sc, t, things, (z, z * 1.0001), [(x, x + 1e-3)], 1):
                break
