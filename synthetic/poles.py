"""Poles: lamp posts, sign posts, traffic-light poles and plain posts."""

from typing import Tuple

import numpy as np

from synthetic.scene import (
    BAND_PAINT,
    INK,
    LAMP_GLOW,
    POLE,
    POLE_COLORS,
    SIGN_BLUE,
    SIGN_RED,
    WHITE,
    Scene,
    Thing,
    cylinder_shade,
    ellipse,
    jitter,
    rect,
    scaled,
    thick_line,
    upright,
)


def sample_pole(rng: np.random.Generator) -> Thing:
    kind = str(rng.choice(["lamp", "lamp", "sign", "sign", "signal", "plain"]))
    color_name = str(rng.choice(list(POLE_COLORS)))
    style = {"color": jitter(rng, POLE_COLORS[color_name], 0.1), "taper": rng.uniform(0.55, 1.0)}
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
        style["color"] = jitter(
            rng, POLE_COLORS["galvanised"] if rng.random() < 0.6 else POLE_COLORS["grey"]
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
            box_color=jitter(rng, (36, 36, 38) if rng.random() < 0.7 else (40, 170, 210)),
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
    return Thing(kind, POLE, 0.0, 1.0, width, width, height, style)


def _shaft(sc: Scene, t: Thing, owner: int) -> Tuple[float, float, float, float, float]:
    """Draws a pole's shaft (and base); returns (x_foot, y_foot, px per metre, w_bottom, w_top)."""
    cam, st = sc.cam, t.style
    k = cam.focal / t.Z
    xf, yf = t.foot(cam)
    w_top = max(sc.min_px, t.width * st["taper"] * k)
    w_bot = max(w_top, t.width * k)
    y_top = yf - t.height * k
    b_bot = w_bot / 2 * cam.height / t.Z
    shade = cylinder_shade(xf - w_bot / 2, xf + w_bot / 2, sc.light)
    sc.canvas.fill(upright(xf, yf, y_top, w_bot, w_top, b_bot), st["color"], owner, shade)
    if st.get("base"):
        wb = max(w_bot * st["base_w"], w_bot + 2)
        y_base = yf - st["base_h"] * k
        # a base wider than the shaft, with a sloping collar up to it
        collar = [[xf - w_bot / 2, y_base - 0.15 * k], [xf + w_bot / 2, y_base - 0.15 * k]]
        body = upright(xf, yf, y_base, wb, wb * 0.9, wb / 2 * cam.height / t.Z)
        shade = cylinder_shade(xf - wb / 2, xf + wb / 2, sc.light)
        sc.canvas.fill(
            np.vstack([collar, body[1:2], body[2:], body[:1]]), st["color"], owner, shade
        )
    return xf, yf, k, w_bot, w_top


def draw_lamp(sc: Scene, t: Thing, owner: int) -> None:
    xf, yf, k, _, _ = _shaft(sc, t, owner)
    y_top = yf - t.height * k
    if t.style["head"] in ("lantern", "globe"):
        _lamp_on_top(sc, t, owner, xf, y_top, k)
    else:
        for side in t.style["arms"]:
            _lamp_arm(sc, t, owner, xf, y_top, k, side)


def _lamp_on_top(sc: Scene, t: Thing, owner: int, xf: float, y_top: float, k: float) -> None:
    """A globe, or a lantern under a little roof, sitting on top of the shaft."""
    color, r = t.style["color"], max(0.2 * k, sc.min_px)
    if t.style["head"] == "globe":
        shade = cylinder_shade(xf - r, xf + r, sc.light)
        sc.canvas.fill(ellipse(xf, y_top - r * 0.9, r, r), LAMP_GLOW, owner, shade)
        return
    glass = [[xf - r * 0.6, y_top], [xf + r * 0.6, y_top], [xf + r, y_top - 2.8 * r]]
    sc.canvas.fill(np.array(glass + [[xf - r, y_top - 2.8 * r]]), LAMP_GLOW, owner)
    roof = [[xf - r * 1.2, y_top - 2.7 * r], [xf + r * 1.2, y_top - 2.7 * r], [xf, y_top - 3.6 * r]]
    sc.canvas.fill(np.array(roof), color, owner)
    post = np.array([[xf, y_top], [xf, y_top - 2.8 * r]])
    sc.canvas.fill(thick_line(post, max(2.0, r * 0.25)), color, owner)


def _lamp_arm(sc: Scene, t: Thing, owner: int, xf: float, y_top: float, k: float, side: int):
    """A curved arm reaching out to ``side`` (-1 left, 1 right) with a lamp head at its end."""
    st = t.style
    arm_w = max(3.0, 0.7 * sc.min_px, 0.07 * k)
    start = np.array([xf, y_top + 0.25 * k])
    end = start + (side * st["arm_len"] * k, -st["arm_rise"] * k)
    ctrl = np.array([xf + side * st["arm_len"] * k * 0.15, end[1] - 0.05 * k])
    s = np.linspace(0, 1, 12)[:, None]
    curve = (1 - s) ** 2 * start + 2 * s * (1 - s) * ctrl + s**2 * end  # quadratic Bezier
    sc.canvas.fill(thick_line(curve, arm_w), st["color"], owner)
    hw, hh = max(0.32 * k, 2 * arm_w), max(0.12 * k, arm_w)
    cx, cy = end[0] + side * hw * 0.45, end[1]
    if st["head"] == "cobra":
        upper = ellipse(cx, cy, hw, hh, np.pi, 2 * np.pi, 14)
        head = np.vstack([upper, ellipse(cx, cy, hw, hh * 0.8, 0, np.pi, 14)])
    else:
        head = rect(cx - hw, cy - hh, cx + hw, cy + hh)
    sc.canvas.fill(head, scaled(st["color"], 0.9), owner)
    sc.canvas.fill(ellipse(cx, cy + hh * 0.35, hw * 0.7, hh * 0.5, 0, np.pi, 10), LAMP_GLOW, owner)


def draw_sign(sc: Scene, t: Thing, owner: int) -> None:
    xf, yf, k, _, _ = _shaft(sc, t, owner)
    for shape, size, centre_h, seed in t.style["plates"]:
        r = max(size / 2 * k, 2.5 * sc.min_px)
        _draw_plate(sc, owner, shape, xf, yf - centre_h * k, r, np.random.default_rng(seed))


def _draw_plate(sc: Scene, owner: int, shape: str, cx: float, cy: float, r: float, rng) -> None:
    """A traffic sign about ``2 r`` px across centred on (cx, cy), facing the camera."""
    fill, border = sc.canvas.fill, max(1.5, 0.12 * r)
    if shape == "circle":
        blue = rng.random() < 0.4
        fill(ellipse(cx, cy, r, r), SIGN_BLUE if blue else SIGN_RED, owner)
        if blue:
            fill(rect(cx - 0.5 * r, cy - border, cx + 0.5 * r, cy + border), WHITE, owner)
        else:
            fill(ellipse(cx, cy, r - border, r - border), WHITE, owner)
            fill(rect(cx - 0.45 * r, cy - 0.12 * r, cx + 0.45 * r, cy + 0.12 * r), INK, owner)
    elif shape == "triangle":
        tri = np.array([[cx, cy - r], [cx + r * 1.05, cy + r * 0.8], [cx - r * 1.05, cy + r * 0.8]])
        centre = np.array([cx, cy + r * 0.2])
        fill(tri, SIGN_RED, owner)
        fill(centre + (tri - centre) * 0.7, WHITE, owner)
    elif shape == "octagon":
        ang = np.pi / 8 + np.arange(8) * np.pi / 4
        fill(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1), SIGN_RED, owner)
        fill(rect(cx - 0.6 * r, cy - 0.15 * r, cx + 0.6 * r, cy + 0.15 * r), WHITE, owner)
    else:
        w, h = r * rng.uniform(0.9, 1.5), r * rng.uniform(0.6, 0.9)
        if shape == "back":  # seen from behind: bare metal
            fill(rect(cx - w, cy - h, cx + w, cy + h), (150, 150, 150), owner)
            return
        paint = [SIGN_BLUE, WHITE, (60, 120, 40), (40, 190, 230)][rng.integers(4)]
        fill(rect(cx - w, cy - h, cx + w, cy + h), WHITE, owner)
        fill(rect(cx - w + border, cy - h + border, cx + w - border, cy + h - border), paint, owner)
        ink = INK if paint == WHITE else WHITE
        for j in range(int(rng.integers(1, 4))):  # lines of "text"
            y = cy - h * 0.5 + j * h * 0.4
            fill(
                rect(cx - w * 0.6, y, cx + w * rng.uniform(0, 0.6), y + max(1.0, h * 0.15)),
                ink,
                owner,
            )


def draw_signal(sc: Scene, t: Thing, owner: int) -> None:
    st = t.style
    xf, yf, k, w_bot, _ = _shaft(sc, t, owner)
    red, amber, green = (40, 40, 200), (40, 160, 230), (90, 200, 60)
    heads = [(st["box_h"], 0.34, 0.95, [red, amber, green])]
    if st["ped"]:  # a smaller pedestrian signal below
        heads.append((st["box_h"] - 0.9, 0.3, 0.6, [red, green]))
    for centre_h, box_w, box_h, lamps in heads:
        w, h = max(box_w * k, 2 * sc.min_px), box_h * k
        cx, cy = xf + st["side"] * (w_bot + w) / 2, yf - centre_h * k
        shade = cylinder_shade(cx - w / 2, cx + w / 2, sc.light)
        sc.canvas.fill(
            rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), st["box_color"], owner, shade
        )
        for i, color in enumerate(lamps):
            lit = i == st["lit"] % len(lamps)
            ly = cy - h / 2 + h * (i + 0.5) / len(lamps)
            sc.canvas.fill(
                ellipse(cx, ly, w * 0.32, w * 0.32, n=16),
                color if lit else scaled(color, 0.3),
                owner,
            )


def draw_plain(sc: Scene, t: Thing, owner: int) -> None:
    st = t.style
    xf, yf, k, w_bot, w_top = _shaft(sc, t, owner)
    y_top = yf - t.height * k
    sc.canvas.fill(ellipse(xf, y_top, w_top * 0.6, w_top * 0.35), scaled(st["color"], 0.8), owner)
    shade = cylinder_shade(xf - w_bot / 2, xf + w_bot / 2, sc.light)
    for h, paint in st["bands"]:  # reflective bands, as wide as the tapered shaft there
        y, w = yf - h * k, w_bot + (w_top - w_bot) * h / t.height
        sc.canvas.fill(
            upright(xf, y, y - 0.12 * k, w, w, w / 2 * sc.cam.height / t.Z),
            BAND_PAINT[paint],
            owner,
            shade,
        )
    if st["poster"]:
        w, y = w_bot * 0.4, yf - 1.6 * k
        sc.canvas.fill(rect(xf - w, y - 0.3 * k, xf + w, y), (200, 210, 220), owner)
    if st["box"]:  # a utility box strapped to the pole
        w, y = max(0.3 * k, w_bot * 1.4), yf - 1.2 * k
        sc.canvas.fill(
            rect(xf - w / 2, y - 0.45 * k, xf + w / 2, y), scaled(st["color"], 1.15), owner
        )
