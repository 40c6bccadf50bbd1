"""Sky, clouds, ground, road and the buildings behind the objects."""

from typing import Tuple

import cv2
import numpy as np

from synthetic.scene import (
    FACADE_COLORS,
    Color,
    Scene,
    ellipse,
    jitter,
    rect,
    scaled,
    side_quad,
)


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cell: int) -> np.ndarray:
    """Low-frequency noise of the given shape, roughly N(0, 1), varying over ``cell`` px."""
    h, w = shape
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def paint_sky(sc: Scene) -> None:
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


def _paint_clouds(sc: Scene, rows: int) -> None:
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


def paint_ground(sc: Scene) -> None:
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

    grass = np.array(jitter(rng, (58, 128, 84) if rng.random() < 0.7 else (70, 140, 135)))
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
        jitter(rng, [(168, 168, 162), (150, 170, 186), (78, 96, 150)][rng.integers(3)])
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


def _paint_road(sc: Scene, ground, X, Z, ppm_x, ppm_z, shape) -> np.ndarray:
    rng, (lo, hi) = sc.rng, sc.layout.road
    asphalt = np.array(jitter(rng, (84, 84, 86), 0.15))
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


def _facade_windows(sc: Scene, x0, x1, base, top, ppm, glass: Color) -> None:
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


def paint_far_row(sc: Scene) -> None:
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
            wall = jitter(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))])
            sc.canvas.fill(rect(x, top, x + w, base + 1), scaled(wall, front))
            glass = jitter(rng, (98, 84, 66), 0.2)
            _facade_windows(sc, x, x + w, base, top, ppm, scaled(glass, front))
            sc.canvas.fill(rect(x, top, x + w, top + 0.5 * ppm), scaled(wall, front * 0.7))
        x += w + (rng.uniform(0, 6) * ppm if rng.random() < 0.3 else 0)


def _far_trees(sc: Scene, x0: float, x1: float, base: float, ppm: float) -> None:
    rng = sc.rng
    for _ in range(int(rng.integers(2, 6))):
        r = rng.uniform(2.0, 4.5) * ppm
        cx, cy = rng.uniform(x0, x1), base - rng.uniform(2.5, 6) * ppm
        green = jitter(rng, (48, 96, 52), 0.2)
        sc.canvas.fill(ellipse(cx, cy, r, r * rng.uniform(0.8, 1.1)), scaled(green, 0.85))
        trunk = ellipse(cx, cy, r * 0.12, 0.1)
        sc.canvas.fill(np.vstack([trunk, [[cx, base], [cx + r * 0.1, base]]]), (40, 55, 70))


def paint_side_buildings(sc: Scene) -> None:
    """Street scenes: facades running along the street beyond the sidewalks, in perspective."""
    rng, lay = sc.rng, sc.layout
    for side, x_wall in ((-1, lay.walks[0][0]), (1, lay.walks[-1][1])):
        if side * x_wall < 1.5 or rng.random() < 0.35:
            continue
        height = rng.uniform(6, 22)
        z_near, z_far = 0.6, lay.far_depth
        wall = jitter(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))])
        light = sc.light.face((-side, 0, 0))
        sc.canvas.fill(side_quad(sc.cam, x_wall, 0, height, z_near, z_far), scaled(wall, light))
        glass = scaled(jitter(rng, (98, 84, 66), 0.2), light)
        _side_windows(sc, x_wall, height, z_near, z_far, glass)


def _side_windows(sc: Scene, x_wall, height, z_near, z_far, glass: Color) -> None:
    rng, cam = sc.rng, sc.cam
    spacing, floor_h = rng.uniform(2.5, 4.0), rng.uniform(3.0, 3.6)
    win_w, win_h = spacing * rng.uniform(0.4, 0.65), floor_h * rng.uniform(0.45, 0.6)
    shop = rng.random() < 0.5
    z = z_near + rng.uniform(0, spacing)
    while z < z_far - spacing:
        if shop:  # shop windows on the ground floor
            pane = side_quad(cam, x_wall, 0.4, 2.6, z, z + spacing * 0.8)
            sc.canvas.fill(pane, scaled(glass, rng.uniform(0.6, 1.3)))
        y = floor_h * 1.3
        while y + win_h < height - 0.5:
            pane = side_quad(cam, x_wall, y, y + win_h, z, z + win_w)
            sc.canvas.fill(pane, scaled(glass, rng.uniform(0.7, 1.5)))
            y += floor_h
        z += spacing
