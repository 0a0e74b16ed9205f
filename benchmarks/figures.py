"""The paper's figures, regenerated from this suite's own results and cached fused images.

- Fig. 1 (left): model size and fusion time against SD and VIF (from ``results/table3.csv`` + ``table4.csv``);
- Fig. 3: VGG-19 feature maps of a source image (``mmdrfuse.vgg`` with ImageNet weights; random weights are never
  used: without real weights the figure is reported unavailable);
- Figs. 5-7: qualitative grids on MSRS, LLVIP and MRI-PET with zoomed boxes, from the cached fused images;
- Fig. 8: detection mAP@.5:.95 against fusion time per method (log time axis), from ``results/detection.csv``.

Every function takes explicit inputs (paths, DataFrames, a feature extractor) and writes ``<out_stem>.png`` and
``<out_stem>.pdf`` atomically, returning both paths. :func:`run` is the harness entry
(``python -m benchmarks.run figures``): it draws what its inputs allow and records skipped figures with the reason
in ``results/figures/figures.json``. Matplotlib is used through its object API (no pyplot state).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks.report import STD_SUFFIX
from mmdrfuse.atomic import atomic_path, write_json
from mmdrfuse.errors import MMDRFuseError

if TYPE_CHECKING:
    from benchmarks.run import Context

QUALITATIVE = {"fig5": "MSRS", "fig6": "LLVIP", "fig7": "MRI-PET"}  # figure -> data set (as in the paper)
BOX_COLORS = ((230, 40, 40), (40, 200, 60), (250, 210, 0))   # red, green, yellow (the paper's box colours)
SOURCE_METHODS = ("IR-only", "visible-only")


# ---------------------------------------------------------------------------------------------------- helpers
def _new_figure(w: float, h: float):
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


def _label(method: str, weights: str, multi: bool) -> str:
    return f"{method} ({weights})" if multi and weights not in ("", "none", "default", "-") else method


def _pick(df: pd.DataFrame, metric: str, source: str) -> pd.DataFrame:
    """Rows of one metric and source, one per (method, weights)."""
    sub = df[(df["metric"] == metric) & (df["source"] == source)]
    return sub.drop_duplicates(["method", "weights"])


# -------------------------------------------------------------------------------------------------------- fig 8
def fig8(detection: pd.DataFrame, times_ms: Mapping[str, float], out_stem: str | os.PathLike,
         subtitle: str = "", metric: str = "mAP50-95") -> list[Path]:
    """Detection precision against fusion time per method (the paper's Fig. 8).

    ``detection``: tidy rows (``method``, ``weights``, ``metric``, ``value``, ``source``); ``times_ms``: method ->
    fusion time in ms per pair. Methods with a time are points on a log time axis; IR-only / visible-only (no fusion)
    and methods without a known time are drawn as dashed horizontal lines. With no times at all, a bar chart.
    Where the table has ``<metric>_std`` rows (several detector seeds), points get ± std error bars and lines a band.
    """
    rows = _pick(detection, metric, "ours")
    if rows.empty:
        raise MMDRFuseError(f"fig8: no '{metric}' rows of source 'ours' in the detection table")
    std_rows = _pick(detection, metric + STD_SUFFIX, "ours")
    std = {(r.method, r.weights): float(r.value) for r in std_rows.itertuples()}
    multi = rows["method"].duplicated(keep=False)
    fig = _new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    timed = [(r, times_ms[r.method]) for r in rows.itertuples() if r.method in times_ms and times_ms[r.method] > 0]
    untimed = [r for r in rows.itertuples() if not (r.method in times_ms and times_ms[r.method] > 0)]
    if timed:
        xs = [t for _, t in timed]
        ys = [r.value for r, _ in timed]
        ax.scatter(xs, ys, s=60, c=[f"C{i % 10}" for i in range(len(xs))], zorder=3)
        errs = [std.get((r.method, r.weights), 0.0) for r, _ in timed]
        if any(errs):
            ax.errorbar(xs, ys, yerr=errs, fmt="none", ecolor="0.35", elinewidth=1, capsize=3, zorder=2)
        same_time: dict[float, int] = {}  # labels of points at one fusion time (e.g. two MMDRFuse weights): stacked
        for (r, t), m in sorted(zip(timed, multi[[r.Index for r, _ in timed]]), key=lambda z: -z[0][0].value):
            k = same_time.get(t, 0)
            same_time[t] = k + 1
            ax.annotate(_label(r.method, r.weights, m), (t, r.value), textcoords="offset points",
                        xytext=(5, 5 - 11 * k), fontsize=8)
        ax.set_xscale("log")
        ax.margins(y=0.15)
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo / 3, hi * 3)
        for i, r in enumerate(untimed):
            color = f"C{(len(timed) + i) % 10}"
            ax.axhline(r.value, ls="--", lw=1, color=color)
            if std.get((r.method, r.weights)):
                sd = std[(r.method, r.weights)]
                ax.axhspan(r.value - sd, r.value + sd, color=color, alpha=0.12, lw=0)
            ax.annotate(f"{_label(r.method, r.weights, multi[r.Index])} (no fusion time)",
                        (lo / 2.8, r.value), textcoords="offset points", xytext=(0, 3), fontsize=7)
        ax.set_xlabel("fusion time per pair (ms, log scale; results/table3.csv)")
    else:
        names = [_label(r.method, r.weights, m) for r, m in zip(rows.itertuples(), multi)]
        errs = [std.get((r.method, r.weights), 0.0) for r in rows.itertuples()]
        ax.barh(names, rows["value"].to_numpy(), color=[f"C{i % 10}" for i in range(len(names))],
                xerr=errs if any(errs) else None, capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.set_title("fusion times unavailable (no results/table3.csv): precision only", fontsize=8)
    if timed:
        ax.set_ylabel(f"{metric} (person)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Fig. 8: pedestrian detection vs fusion time{' - ' + subtitle if subtitle else ''}", fontsize=9)
    return save_figure(fig, out_stem)


def fig8_subtitle(detection: pd.DataFrame) -> str:
    """"<data set>, <profile> profile, <n> test pairs" from the tidy detection rows (each part only when unique)."""
    def one(col: str):
        values = detection[col].dropna().unique() if col in detection else []
        return values[0] if len(values) == 1 else None

    parts = [one("dataset"), f"{one('profile')} profile" if one("profile") else None,
             f"{one('n_pairs')} test pairs" if one("n_pairs") is not None else None]
    return ", ".join(str(p) for p in parts if p)


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
    fig = _new_figure(8.0, 3.6)
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
    from mmdrfuse.io import read_pil

    img = read_pil(path)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def pick_boxes(images: Sequence[np.ndarray], n: int = 2, frac: float = 0.2) -> list[tuple[int, int, int, int]]:
    """``n`` square boxes ``(x, y, w, h)`` of side ``frac * min(H, W)`` around the strongest mean gradient energy of
    ``images`` (the sources), non-overlapping; deterministic."""
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
        zw = int(min(w * zoom, 0.45 * W))
        zh = int(round(zw * h / max(w, 1)))
        zh = min(zh, int(0.45 * H))
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
        boxes = pick_boxes([panels[k] for k in sources] or list(panels.values()))
    n = len(panels)
    ncols = n if n <= 5 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    H, W = next(iter(shapes))
    fig = _new_figure(2.2 * ncols, 2.2 * nrows * H / W + 0.5)
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

    from mmdrfuse.io import read_gray

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
    fig = _new_figure(1.9 * n, 2.2)
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


# ---------------------------------------------------------------------------------------------------- harness
def _fused_file(folder: Path, stem: str) -> Path | None:
    from mmdrfuse.io import list_images

    return list_images(folder).get(stem)


def _choose_stem(stems: Sequence[str], preferred: str | None = None) -> str:
    if preferred and preferred in stems:
        return preferred
    ordered = sorted(stems)
    return ordered[len(ordered) // 2]


def _qualitative_inputs(ctx: Context, dataset: str, entries, log, preferred: str | None = None
                        ) -> tuple[object, str, dict[str, Path]]:
    """(located data set, chosen stem, {label: fused image}) for one qualitative figure.

    With the harness cache the stem is chosen among the pairs the tables fuse anyway (so nothing big is re-fused) and
    only that one pair is fused for a method that lacks it; otherwise ``ctx.fused_dir(method, dataset)``."""
    from mmdrfuse import data as dataregistry
    from mmdrfuse.io import list_images

    loc = dataregistry.find(dataset, ctx.data_root)
    if loc is None:
        raise MMDRFuseError(f"data set {dataset} not found under {ctx.data_root}")
    cache = ctx.cache
    if preferred is None:
        preferred = (ctx.figure_stems or {}).get(dataset)
    fused: dict[str, Path] = {}
    if cache is not None and all(e.run is not None for e in entries):
        pairs = cache.select(loc)
        by_stem = {p.stem: p for p in pairs}
        common = set(by_stem)
        for e in entries:
            common &= {p.stem for p in cache.select(loc, ctx.max_pairs(e.run))}
        stem = _choose_stem(list(common or by_stem), preferred)
        for e in entries:
            try:
                folder = Path(cache.ensure(e.run, loc, [by_stem[stem]]).folder)
                fused[e.key] = folder / f"{stem}.png"
            except Exception as exc:  # noqa: BLE001 - a method that cannot fuse is left out and logged
                log(f"figures: {dataset}: {e.key} left out ({exc.__class__.__name__}: {exc})")
        return loc, stem, fused
    folders = {}
    for e in entries:
        try:
            folders[e.key] = Path(ctx.fused_dir(e.method, dataset))
        except Exception as exc:  # noqa: BLE001
            log(f"figures: {dataset}: {e.key} left out ({exc.__class__.__name__}: {exc})")
    stems = set(list_images(loc.ir_dir)) & set(list_images(loc.vis_dir))
    for d in folders.values():
        stems &= set(list_images(d))
    if not stems:
        raise MMDRFuseError(f"no pair of {dataset} is fused by every method")
    stem = _choose_stem(list(stems), preferred)
    return loc, stem, {k: _fused_file(d, stem) for k, d in folders.items()}


def run(ctx: Context) -> list[Path]:
    """Harness entry: draw every figure the available inputs allow into ``<out>/figures``.

    On the synthetic demo set (``ctx.synthetic``) every figure is drawn from the demo results: Figs. 5-7 show three
    different DEMO pairs, Fig. 1 uses the DEMO rows of Table 4, and every figure is stamped DEMO."""
    from benchmarks.fusion_methods import fusion_times_ms, method_entries
    from benchmarks.report import is_demo
    from mmdrfuse.io import list_images

    demo = ctx.synthetic
    qualitative = {f: ("DEMO" if demo else d) for f, d in QUALITATIVE.items()}
    demo_stems = {}
    if demo:
        from mmdrfuse import data as dataregistry

        loc = dataregistry.find("DEMO", ctx.data_root)
        stems = sorted(list_images(loc.ir_dir)) if loc else []
        demo_stems = {f: stems[i % len(stems)] for i, f in enumerate(qualitative)} if stems else {}
    out = Path(ctx.out_dir)
    fig_dir = out / "figures"
    written: list[Path] = []
    status: dict[str, str] = {}
    log = ctx.say

    def attempt(name: str, fn: Callable[[], list[Path]]) -> None:
        try:
            paths = fn()
            written.extend(paths)
            status[name] = "written: " + ", ".join(p.name for p in paths)
        except MMDRFuseError as exc:
            status[name] = f"skipped: {exc}"
            log(f"figures: {name} skipped: {exc}")

    # Fig. 1 (left)
    def _fig1():
        t3, t4 = out / "table3.csv", out / "table4.csv"
        missing = [p.name for p in (t3, t4) if not p.is_file()]
        if missing:
            raise MMDRFuseError(f"needs {', '.join(missing)} in {out} (run tables 3 and 4 first)")
        return fig1_left(pd.read_csv(t3), pd.read_csv(t4), fig_dir / "fig1_left",
                         dataset="DEMO" if demo else "MSRS")
    attempt("fig1_left", _fig1)

    # Figs. 5-7 (+ the MSRS IR image of Fig. 5 for Fig. 3)
    entries, _ = method_entries(ctx)
    fig3_source: Path | None = None
    for fig_name, dataset in qualitative.items():
        def _qual(fig_name=fig_name, dataset=dataset):
            nonlocal fig3_source
            if not entries:
                raise MMDRFuseError("no fusion method can run")
            loc, stem, fused = _qualitative_inputs(ctx, dataset, entries, log, demo_stems.get(fig_name))
            if not fused:
                raise MMDRFuseError(f"no method produced a fused image of {dataset} pair {stem}")
            ir, vis = list_images(loc.ir_dir), list_images(loc.vis_dir)
            if fig3_source is None and fig_name == "fig5":
                fig3_source = ir[stem]
            flag = "\n[" + textwrap.fill(loc.flag, 110) + "]" if loc.flag else ""
            a, b = loc.spec.slots
            return qualitative_grid({a: ir[stem], b: vis[stem]}, fused, fig_dir / fig_name,
                                    title=f"{fig_name.replace('fig', 'Fig. ')}: {dataset}, pair {stem}{flag}")
        attempt(fig_name, _qual)

    # Fig. 3
    def _fig3():
        src = fig3_source
        if src is None:
            from mmdrfuse import data as dataregistry
            loc = dataregistry.find("MSRS", ctx.data_root)
            if loc is None:
                raise MMDRFuseError("needs an MSRS source image (data set not found)")
            imgs = list_images(loc.ir_dir)
            src = imgs[_choose_stem(list(imgs))]
        extractor, names, backbone = vgg_extractor(ctx.vgg_weights)
        log(f"figures: fig3 uses the {backbone} VGG-19")
        return fig3_vgg_features(src, fig_dir / "fig3_vgg_features", extractor, names,
                                 backbone=backbone.split(" (")[0] + " ImageNet")
    attempt("fig3", _fig3)

    # Fig. 8
    def _fig8():
        det = out / "detection.csv"
        if not det.is_file():
            raise MMDRFuseError(f"needs {det.name} in {out} (run the detection target first)")
        df = pd.read_csv(det)
        return fig8(df, fusion_times_ms(out), fig_dir / "fig8", subtitle=fig8_subtitle(df))
    attempt("fig8", _fig8)

    prov = fig_dir / "figures.json"
    with contextlib.suppress(OSError):
        write_json(prov, {"profile": ctx.profile, "command": ctx.command,
                          "figures": status, **({"demo": True} if is_demo() else {}),
                          "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        written.append(prov)
    return written
