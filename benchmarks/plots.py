"""Drawing the paper's figures from explicit inputs (DataFrames, image paths, a feature extractor): Fig. 1 (left),
Figs. 5-7 (qualitative grids with zoomed boxes) and Fig. 3 (VGG-19 feature maps), and the one way a figure is saved
(PNG + PDF, atomically, stamped DEMO in a demo run). Which inputs the harness uses is :mod:`benchmarks.figures`'s job;
Fig. 8 is drawn there too. Matplotlib is used through its object API (no pyplot state).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from mmdrfuse.atomic import atomic_path
from mmdrfuse.errors import MMDRFuseError

BOX_COLORS = ((230, 40, 40), (40, 200, 60), (250, 210, 0))   # red, green, yellow (the paper's box colours)


# ---------------------------------------------------------------------------------------------------- helpers
def new_figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def save_figure(fig, out_stem: str | os.PathLike, dpi: int = 200) -> list[Path]:
    """Write ``fig`` as ``<out_stem>.png`` and ``<out_stem>.pdf`` (atomically) and return both paths; in a demo run
    (:func:`benchmarks.report.is_demo`) the figure is stamped DEMO."""
    from benchmarks.report import is_demo

    if is_demo():
        fig.text(0.5, 0.5, "DEMO\nsynthetic data", ha="center", va="center", fontsize=40, color="red", alpha=0.18,
                 rotation=20, weight="bold", zorder=100)
    out_stem = Path(out_stem)
    paths = []
    for ext in (".png", ".pdf"):
        target = out_stem.with_suffix(ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext[1:], dpi=dpi)
        paths.append(target)
    return paths


# -------------------------------------------------------------------------------------------------------- fig 1
def fig1_left(table3: pd.DataFrame, table4: pd.DataFrame, out_stem: str | os.PathLike, dataset: str = "MSRS",
              source: str = "ours") -> list[Path]:
    """Fig. 1 (left): fusion time (log x) against SD and VIF on ``dataset``; marker area grows with model size.

    ``table3`` needs metrics ``Size_KB`` and ``Time_ms``; ``table4`` metrics ``SD`` and ``VIF`` (tidy rows).
    For a method with several weights in Table 4, the ``official`` row is used.
    """
    t3 = table3[table3["source"] == source]
    size = t3[t3["metric"] == "Size_KB"].groupby("method")["value"].first()
    time_ = t3[t3["metric"] == "Time_ms"].groupby("method")["value"].first()
    t4 = table4[(table4["source"] == source) & (table4["dataset"] == dataset)].copy()
    t4["_pref"] = (t4["weights"] != "official").astype(int)
    t4 = t4.sort_values("_pref", kind="stable")
    quality = {m: t4[t4["metric"] == m].groupby("method")["value"].first() for m in ("SD", "VIF")}
    methods = [m for m in time_.index if m in size.index and all(m in q.index for q in quality.values())]
    if not methods:
        raise MMDRFuseError(f"fig1: no method has Size_KB, Time_ms (table3) and SD, VIF on {dataset} (table4) "
                            f"with source '{source}'")
    fig = new_figure(8.0, 3.6)
    smax = max(float(size[m]) for m in methods)
    for k, (metric, q) in enumerate(quality.items()):
        ax = fig.add_subplot(1, 2, k + 1)
        for i, m in enumerate(methods):
            area = 30 + 600 * math.sqrt(max(float(size[m]), 0.0) / smax) if smax > 0 else 60
            ax.scatter([time_[m]], [q[m]], s=area, alpha=0.6, color=f"C{i % 10}", edgecolor="k", lw=0.5, zorder=3)
            ax.annotate(f"{m}\n{float(size[m]):.4g} KB", (time_[m], q[m]), textcoords="offset points",
                        xytext=(6, 4), fontsize=7)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.2)
        ax.set_xlabel("average running time (ms, log scale)")
        ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Fig. 1 (left): efficiency vs quality on {dataset} (marker area ~ model size; source: {source})",
                 fontsize=9)
    every = set(size.index) | set(time_.index) | set().union(*(set(q.index) for q in quality.values()))
    left_out = sorted(every - set(methods))
    if left_out:
        fig.supxlabel(f"left out (missing Size_KB, Time_ms, SD or VIF of source '{source}'): {', '.join(left_out)}",
                      fontsize=7)
    return save_figure(fig, out_stem)


# ---------------------------------------------------------------------------------------------------- figs 5-7
def _rgb(path: str | os.PathLike) -> np.ndarray:
    from mmdrfuse.images import read_pil

    img = read_pil(path)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def inset_size(w: int, h: int, H: int, W: int, zoom: float = 2.0) -> tuple[int, int]:
    """(width, height) of the magnified crop of a w x h box that :func:`zoom_panel` pastes in a bottom corner of an
    H x W panel: ``zoom`` times the box, at most 45% of the panel's width and height."""
    zw = int(min(w * zoom, 0.45 * W))
    return zw, min(int(round(zw * h / max(w, 1))), int(0.45 * H))


def pick_boxes(images: Sequence[np.ndarray], n: int = 2, frac: float = 0.2,
               zoom: float | None = None) -> list[tuple[int, int, int, int]]:
    """``n`` square boxes ``(x, y, w, h)`` of side ``frac * min(H, W)`` around the strongest mean gradient energy of
    ``images`` (the sources), non-overlapping; deterministic. With ``zoom``, no box overlaps the bottom corners where
    :func:`zoom_panel` pastes the magnified crops (a box under a crop would be hidden by it)."""
    from scipy import ndimage

    gray = np.mean([np.asarray(im, dtype=np.float64).reshape(im.shape[0], im.shape[1], -1).mean(-1) / 255.0
                    for im in images], axis=0)
    H, W = gray.shape
    s = max(4, int(round(frac * min(H, W))))
    energy = np.hypot(ndimage.sobel(gray, 0), ndimage.sobel(gray, 1))
    score = ndimage.uniform_filter(energy, size=s, mode="constant")
    half = s // 2
    valid = np.full_like(score, -np.inf)
    valid[half:H - (s - half) + 1, half:W - (s - half) + 1] = score[half:H - (s - half) + 1, half:W - (s - half) + 1]
    if zoom is not None:  # centres whose box [cx - half, cx - half + s) reaches into a corner crop's rectangle
        zw, zh = inset_size(s, s, H, W, zoom)
        clear = valid.copy()
        rows = slice(max(0, H - zh - s + half + 1), H)
        clear[rows, :max(0, zw + half)] = -np.inf
        clear[rows, max(0, W - zw - s + half + 1):] = -np.inf
        valid = clear if np.isfinite(clear).any() else valid  # a panel too small to keep them clear: as without
    boxes = []
    for _ in range(n):
        if not np.isfinite(valid).any():
            break
        cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
        x, y = int(cx - half), int(cy - half)
        boxes.append((x, y, s, s))
        valid[max(0, y - half):y + s + half + 1, max(0, x - half):x + s + half + 1] = -np.inf
    return boxes


def _draw_rect(arr: np.ndarray, box: tuple[int, int, int, int], color, width: int) -> None:
    """Draw the outline of ``box`` (x, y, w, h), ``width`` pixels thick, inside the box, in place."""
    x, y, w, h = box
    H, W = arr.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    t = max(1, min(width, (x1 - x0) // 2, (y1 - y0) // 2))
    arr[y0:y0 + t, x0:x1] = color
    arr[y1 - t:y1, x0:x1] = color
    arr[y0:y1, x0:x0 + t] = color
    arr[y0:y1, x1 - t:x1] = color


def zoom_panel(img: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], zoom: float = 2.0) -> np.ndarray:
    """``img`` (H x W x 3 uint8) with coloured boxes and their magnified crops pasted in the bottom corners."""
    out = img.copy()
    H, W = out.shape[:2]
    lw = max(1, round(min(H, W) / 200))
    for i, box in enumerate(boxes[:2]):
        x, y, w, h = box
        crop = Image.fromarray(img[y:y + h, x:x + w])
        zw, zh = inset_size(w, h, H, W, zoom)
        big = np.asarray(crop.resize((max(zw, 1), max(zh, 1)), Image.Resampling.BICUBIC), dtype=np.uint8).copy()
        color = BOX_COLORS[i % len(BOX_COLORS)]
        _draw_rect(big, (0, 0, big.shape[1], big.shape[0]), color, lw)
        px = 0 if i == 0 else W - big.shape[1]
        py = H - big.shape[0]
        out[py:py + big.shape[0], px:px + big.shape[1]] = big
    for i, box in enumerate(boxes):
        _draw_rect(out, box, BOX_COLORS[i % len(BOX_COLORS)], lw)
    return out


def qualitative_grid(sources: Mapping[str, str | os.PathLike], fused: Mapping[str, str | os.PathLike],
                     out_stem: str | os.PathLike, boxes: Sequence[tuple[int, int, int, int]] | None = None,
                     title: str = "", zoom: float = 2.0) -> list[Path]:
    """Figs. 5-7: the source images then each method's fused image, all with the same zoomed boxes.

    ``sources``: label -> image path (e.g. ``{"IR": ..., "VIS": ...}``); ``fused``: method -> fused image path.
    ``boxes``: ``(x, y, w, h)`` in pixels; chosen by :func:`pick_boxes` on the sources when None.
    """
    panels = {k: _rgb(p) for k, p in {**sources, **fused}.items()}
    if not panels:
        raise MMDRFuseError("qualitative_grid: no images given")
    shapes = {v.shape[:2] for v in panels.values()}
    if len(shapes) != 1:
        raise MMDRFuseError(f"qualitative_grid: images differ in size {sorted(shapes)}; fuse the same pair")
    if boxes is None:
        boxes = pick_boxes([panels[k] for k in sources] or list(panels.values()), zoom=zoom)
    n = len(panels)
    ncols = n if n <= 5 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    H, W = next(iter(shapes))
    fig = new_figure(2.2 * ncols, 2.2 * nrows * H / W + 0.5)
    for i, (name, img) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(zoom_panel(img, boxes, zoom))
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out_stem)


# -------------------------------------------------------------------------------------------------------- fig 3
def fig3_vgg_features(image_path: str | os.PathLike, out_stem: str | os.PathLike,
                      extractor: Callable, names: Sequence[str] | None = None, max_side: int = 480,
                      backbone: str = "") -> list[Path]:
    """Fig. 3: a source image, its 3-channel duplicate, and the five VGG-19 feature maps (channel mean).

    ``extractor``: callable taking the gray image N x 1 x H x W in [0, 1] and returning a list of feature maps
    (``mmdrfuse.vgg.load_vgg()``); never a randomly initialised network.
    """
    import torch

    from mmdrfuse.images import read_gray

    x = read_gray(image_path)
    h, w = x.shape[-2:]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        x = torch.nn.functional.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear",
                                            align_corners=False)
    with torch.no_grad():
        feats = list(extractor(x))
    names = list(names) if names else [f"feature {i + 1}" for i in range(len(feats))]
    n = 2 + len(feats)
    fig = new_figure(1.9 * n, 2.2)
    gray = x[0, 0].numpy()
    ax = fig.add_subplot(1, n, 1)
    ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
    ax.set_title("source", fontsize=8)
    ax.set_axis_off()
    ax = fig.add_subplot(1, n, 2)
    ax.imshow(np.repeat(gray[..., None], 3, axis=-1))
    ax.set_title("duplicated (3 ch)", fontsize=8)
    ax.set_axis_off()
    for i, f in enumerate(feats):
        m = f[0].mean(0).numpy()
        lo, hi = float(m.min()), float(m.max())
        ax = fig.add_subplot(1, n, 3 + i)
        ax.imshow((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m), cmap="gray")
        ax.set_title(names[i] if i < len(names) else f"feature {i + 1}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle("Fig. 3: VGG-19 feature maps (channel mean, min-max scaled)"
                 + (f"; weights: {backbone}" if backbone else ""), fontsize=9)
    return save_figure(fig, out_stem)


def vgg_extractor(weights: str | os.PathLike | None = None):
    """``(extractor, names, source)`` from :mod:`mmdrfuse.vgg` with real ImageNet weights; raises
    :class:`MMDRFuseError` saying why when none are available (random weights are not acceptable for Fig. 3)."""
    try:
        from mmdrfuse import vgg
    except ImportError as exc:
        raise MMDRFuseError(f"Fig. 3 unavailable: mmdrfuse.vgg cannot be imported ({exc})") from None
    model = vgg.load_vgg(weights)  # raises BackboneNotFoundError (an MMDRFuseError) with how to get weights
    if getattr(model, "backbone", "") == "random":
        raise MMDRFuseError("Fig. 3 unavailable: only a randomly initialised VGG-19 is available")
    return model, list(getattr(vgg, "TAP_NAMES", [])), f"{model.backbone} ({getattr(model, 'source', '')})"
