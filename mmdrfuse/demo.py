"""A built-in synthetic infrared/visible demo set: warm targets on a textured scene, generated procedurally.

Used when no real data is found anywhere (``python -m benchmarks.run all`` with an empty data root), and by tests.
These images are NOT the paper's data: every report made from them says so.

Each pair is a deterministic function of ``(seed, index, height, width)`` (NumPy PCG64 + PIL bicubic resizing):

- visible (RGB): sky gradient, a skyline of buildings with lit windows, a road with lane marks and fractal texture
  everywhere; a random illumination level (day / dusk / night) scales it, so targets can be hard to see;
- infrared (gray): a smooth, low-texture temperature map of the same scene (sky cold, buildings and road mid) plus
  warm targets (pedestrians: body ellipse + head; cars: body with a hot engine and wheels) and a little sensor noise.

Every pedestrian is in both images (warm in the infrared, a low-contrast figure in the visible) and its box is written
as a YOLO label (``DEMO/labels/<stem>.txt``: ``0 cx cy w h``, normalised), so the detection benchmark runs on the demo
set too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_PAIRS = 4
DEFAULT_SIZE = (240, 320)  # H, W
DEFAULT_SEED = 0
FOLDER = "DEMO"  # under the data root: DEMO/ir, DEMO/vi, DEMO/labels (mmdrfuse.data registers it)
PERSON = 0  # YOLO class of the pedestrians


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Multi-octave value noise in [0, 1]: random grids upsampled bicubically, amplitudes halving per octave."""
    out = np.zeros((h, w), np.float64)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        gh, gw = base * 2 ** o, base * 2 ** o * max(1, round(w / h))
        grid = rng.random((gh, gw)).astype(np.float32)
        up = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC), np.float64)
        out += amp * up
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo + 1e-12)


def _box3(img: np.ndarray) -> np.ndarray:
    """3 x 3 mean filter with edge replication."""
    p = np.pad(img, 1, mode="edge")
    h, w = img.shape
    return sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_pair(index: int = 0, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1],
              seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic pair: ``(ir uint8 H x W, visible uint8 H x W x 3)``."""
    ir, vis, _ = make_pair_with_boxes(index, height, width, seed)
    return ir, vis


def make_pair_with_boxes(index: int = 0, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1],
                         seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray, list[tuple[float, ...]]]:
    """:func:`make_pair` and the pedestrians' boxes as YOLO ``(cx, cy, w, h)``, normalised to [0, 1].

    One generator draws everything, in this order: the scene, the pedestrians, the cars, the visible image, the
    infrared image (the order is part of the pair's definition: changing it changes every demo image)."""
    if height < 16 or width < 16:
        raise ValueError(f"demo images need at least 16 x 16 pixels, got {height} x {width}")
    rng = np.random.default_rng([seed, index])
    scene = _scene(rng, height, width)
    boxes = _pedestrians(rng, scene)
    _cars(rng, scene)
    vis, texture = _visible(rng, scene)
    ir = _infrared(rng, scene, texture)
    ir8 = np.clip(np.rint(ir * 255.0), 0, 255).astype(np.uint8)
    vis8 = np.clip(np.rint(vis * 255.0), 0, 255).astype(np.uint8)
    return ir8, vis8, boxes


@dataclass
class _Scene:
    """The geometry both modalities share, and the warm targets drawn into it."""

    yy: np.ndarray  # row coordinate of every pixel (float64)
    xx: np.ndarray  # column coordinate
    horizon: int
    sky: np.ndarray
    buildings: np.ndarray
    windows: np.ndarray
    road: np.ndarray
    lanes: np.ndarray
    targets: np.ndarray  # temperature excess of warm objects in [0, 1]
    target_mask: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.yy.shape


def _scene(rng: np.random.Generator, h: int, w: int) -> _Scene:
    """Horizon, sky, a skyline of buildings with windows, a road with lane marks; no targets yet."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    horizon = int(h * rng.uniform(0.35, 0.5))
    buildings = np.zeros((h, w), bool)
    windows = np.zeros((h, w), bool)
    x = 0
    while x < w:
        bw = int(rng.integers(w // 12 + 4, w // 5 + 6))
        top = int(horizon - rng.uniform(0.15, 0.8) * horizon)
        buildings[top:horizon, x:x + bw] = True
        for wy in range(top + 4, horizon - 4, 8):
            for wx in range(x + 3, min(x + bw, w) - 3, 7):
                if rng.random() < 0.45:
                    windows[wy:wy + 3, wx:wx + 3] = True
        x += bw + int(rng.integers(0, w // 16 + 2))
    road = (yy >= horizon) & (np.abs(xx - w / 2) < (yy - horizon + 1) * 0.9 + w * 0.05)
    lanes = road & (np.abs(xx - w / 2) < 1.5) & (((yy.astype(int) // 6) % 2) == 0)
    return _Scene(yy, xx, horizon, yy < horizon, buildings, windows, road, lanes,
                  np.zeros((h, w), np.float64), np.zeros((h, w), bool))


def _pedestrians(rng: np.random.Generator, s: _Scene) -> list[tuple[float, ...]]:
    """Draw 2-4 warm pedestrians (body ellipse + head) into ``s``; their boxes as YOLO ``(cx, cy, w, h)``."""
    (h, w), yy, xx, horizon = s.shape, s.yy, s.xx, s.horizon
    boxes = []
    for _ in range(int(rng.integers(2, 5))):
        cy = rng.uniform(horizon + 0.1 * (h - horizon), h * 0.92)
        scale = 0.25 + 0.75 * (cy - horizon) / (h - horizon)
        cx = rng.uniform(0.05 * w, 0.95 * w)
        ry, rx = 0.09 * h * scale, 0.025 * w * scale + 1.0
        body = _ellipse(yy, xx, cy, cx, ry, rx)
        head = _ellipse(yy, xx, cy - 1.25 * ry, cx, 0.35 * ry + 1, 0.8 * rx + 0.5)
        s.targets[body | head] = np.maximum(s.targets[body | head], rng.uniform(0.75, 1.0))
        s.target_mask |= body | head
        ys, xs = np.nonzero(body | head)
        if len(ys):  # the pixels drawn (clipped at the borders), as a box
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            boxes.append((float(x0 + x1) / 2 / w, float(y0 + y1) / 2 / h, float(x1 - x0) / w, float(y1 - y0) / h))
    return boxes


def _cars(rng: np.random.Generator, s: _Scene) -> None:
    """Draw 1-2 cars (warm body, hot engine, wheels) into ``s``."""
    (h, w), yy, xx, horizon = s.shape, s.yy, s.xx, s.horizon
    for _ in range(int(rng.integers(1, 3))):
        cy = rng.uniform(horizon + 0.2 * (h - horizon), h * 0.9)
        scale = 0.3 + 0.7 * (cy - horizon) / (h - horizon)
        cx = rng.uniform(0.15 * w, 0.85 * w)
        cw, ch = 0.16 * w * scale + 3, 0.07 * h * scale + 2
        car = (np.abs(xx - cx) < cw) & (np.abs(yy - cy) < ch)
        engine = car & (xx > cx + 0.4 * cw)
        wheels = _ellipse(yy, xx, cy + ch, cx - 0.6 * cw, 0.3 * ch + 1, 0.15 * cw + 1) | \
            _ellipse(yy, xx, cy + ch, cx + 0.6 * cw, 0.3 * ch + 1, 0.15 * cw + 1)
        s.targets[car] = np.maximum(s.targets[car], 0.5)
        s.targets[engine] = np.maximum(s.targets[engine], 0.95)
        s.targets[wheels] = np.maximum(s.targets[wheels], 0.8)
        s.target_mask |= car | wheels


def _visible(rng: np.random.Generator, s: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """The visible image (H x W x 3 float): textured and lit, targets low contrast; and its coarse texture (the
    infrared buildings reuse it)."""
    (h, w), yy = s.shape, s.yy
    tex = _fractal(rng, h, w, octaves=6)
    fine = _fractal(rng, h, w, octaves=3, base=32)
    light = float(rng.choice([1.0, 0.6, 0.25]))  # day, dusk, night
    vis = np.zeros((h, w, 3), np.float64)
    sky_col = np.stack([0.45 + 0.3 * yy / h, 0.6 + 0.25 * yy / h, 0.85 + 0.1 * yy / h], -1)
    vis[s.sky] = sky_col[s.sky]
    ground = (0.3 + 0.3 * tex[..., None] + 0.15 * fine[..., None]) * np.array([0.9, 1.0, 0.7])
    vis[~s.sky] = ground[~s.sky]
    bcol = 0.3 + 0.35 * fine[..., None] * np.array([1.0, 0.95, 0.9])
    vis[s.buildings] = bcol[s.buildings]
    vis[s.windows] = np.array([0.95, 0.9, 0.6]) if light < 0.5 else np.array([0.3, 0.35, 0.45])
    rcol = 0.25 + 0.15 * fine[..., None]
    vis[s.road] = rcol[s.road]
    vis[s.lanes] = 0.9
    tcol = 0.3 + 0.2 * fine[..., None] * np.array([0.8, 0.7, 0.9])
    vis[s.target_mask] = tcol[s.target_mask]
    vis *= light
    vis[s.windows & (light < 0.5)] = np.array([0.95, 0.9, 0.6])  # lit windows stay bright at night
    vis += 0.015 * rng.standard_normal((h, w, 3))
    return vis, tex


def _infrared(rng: np.random.Generator, s: _Scene, texture: np.ndarray) -> np.ndarray:
    """The infrared image (H x W float): a smooth temperature map of the scene plus the warm targets."""
    (h, w), yy = s.shape, s.yy
    temp = np.where(s.sky, 0.08 + 0.07 * yy / max(s.horizon, 1), 0.35 + 0.1 * _fractal(rng, h, w, octaves=3))
    temp = np.where(s.buildings, 0.45 + 0.05 * texture, temp)
    temp = np.where(s.windows, 0.55, temp)
    temp = np.where(s.road, 0.4, temp)
    temp = np.maximum(temp, s.targets)
    ir = _box3(temp)  # thermal optics blur edges a little
    ir += 0.004 * rng.standard_normal((h, w))  # mild sensor noise
    return ir


def yolo_lines(boxes) -> str:
    """YOLO label text (``0 cx cy w h`` per pedestrian)."""
    return "".join(f"{PERSON} " + " ".join(f"{v:.6f}" for v in b) + "\n" for b in boxes)


def write_demo(root: str | os.PathLike, n_pairs: int = DEFAULT_PAIRS, height: int = DEFAULT_SIZE[0],
               width: int = DEFAULT_SIZE[1], seed: int = DEFAULT_SEED) -> Path:
    """Write the demo set to ``root/DEMO/{ir,vi}/<stem>.png`` and its pedestrians' boxes to
    ``root/DEMO/labels/<stem>.txt`` (atomic writes; existing identical files kept). Returns ``root/DEMO``.
    """
    from mmdrfuse.atomic import write_text
    from mmdrfuse.images import save_image

    out = Path(root) / FOLDER
    for i in range(n_pairs):
        stem = f"demo_{i:03d}"
        ir, vis, boxes = make_pair_with_boxes(i, height, width, seed)
        label = out / "labels" / f"{stem}.txt"
        text = yolo_lines(boxes)
        if not (label.is_file() and label.read_text(encoding="utf-8") == text):
            write_text(label, text)
        for sub, arr in (("ir", ir), ("vi", vis)):
            target = out / sub / f"{stem}.png"
            if target.is_file():
                try:
                    if np.array_equal(np.asarray(Image.open(target)), arr):
                        continue
                except OSError:
                    pass
            save_image(target, arr)
    return out
