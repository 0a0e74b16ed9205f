"""The paper's figures, regenerated from this suite's own results and cached fused images.

- Fig. 1 (left): model size and fusion time against SD and VIF (from ``results/table3.csv`` + ``table4.csv``);
- Fig. 3: VGG-19 feature maps of a source image (``mmdrfuse.vgg`` with ImageNet weights; random weights are never
  used: without real weights the figure is reported unavailable);
- Figs. 5-7: qualitative grids on MSRS, LLVIP and MRI-PET with zoomed boxes, from the cached fused images;
- Fig. 8: detection mAP@.5:.95 against fusion time per method (log time axis), from ``results/detection.csv`` (the
  detection target writes results only; Fig. 8 is drawn here).

Figs. 1, 3 and 5-7 are drawn by :mod:`benchmarks.plots` (re-exported here), Fig. 8 by :func:`fig8`; each takes
explicit inputs and writes ``<out_stem>.png`` and ``<out_stem>.pdf`` atomically, returning both paths. :func:`run` is
the harness entry (``python -m benchmarks.run figures``): it finds the inputs, draws what they allow and records
skipped figures with the reason in ``results/figures/figures.json``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import pandas as pd

from benchmarks.plots import (BOX_COLORS, fig1_left, fig3_vgg_features, inset_size, new_figure, pick_boxes,
                              qualitative_grid, save_figure, vgg_extractor, zoom_panel)
from benchmarks.report import STD_SUFFIX
from mmdrfuse.atomic import write_json
from mmdrfuse.errors import MMDRFuseError

if TYPE_CHECKING:
    from benchmarks.run import Context

__all__ = ["BOX_COLORS", "QUALITATIVE", "fig1_left", "fig3_vgg_features", "fig8", "fig8_subtitle", "inset_size",
           "pick_boxes", "qualitative_grid", "run", "save_figure", "vgg_extractor", "zoom_panel"]

QUALITATIVE = {"fig5": "MSRS", "fig6": "LLVIP", "fig7": "MRI-PET"}  # figure -> data set (as in the paper)
SOURCE_METHODS = ("IR-only", "visible-only")


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
    fig = new_figure(6.4, 4.2)
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


# ---------------------------------------------------------------------------------------------------- harness
def _fused_file(folder: Path, stem: str) -> Path | None:
    from mmdrfuse.images import list_images

    return list_images(folder).get(stem)


def _choose_stem(stems: Sequence[str], preferred: str | None = None) -> str:
    if preferred and preferred in stems:
        return preferred
    ordered = sorted(stems)
    return ordered[len(ordered) // 2]


def _qualitative_inputs(ctx: Context, dataset: str, entries, log, preferred: str | None = None
                        ) -> tuple[object, str, tuple[Path, Path], dict[str, Path]]:
    """(located data set, chosen stem, its two source images, {label: fused image}) for one qualitative figure.

    With the harness cache the stem is chosen among the pairs the tables fuse anyway (so nothing big is re-fused) and
    only that one pair is fused for a method that lacks it; otherwise ``ctx.fused_dir(method, dataset)``."""
    from mmdrfuse import data as dataregistry
    from mmdrfuse.images import list_images

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
        return loc, stem, tuple(by_stem[stem].paths), fused  # the pair may be in a supplement folder (LLVIP)
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
    sources = (list_images(loc.ir_dir)[stem], list_images(loc.vis_dir)[stem])
    return loc, stem, sources, {k: _fused_file(d, stem) for k, d in folders.items()}


def run(ctx: Context) -> list[Path]:
    """Harness entry: draw every figure the available inputs allow into ``<out>/figures``.

    On the synthetic demo set (``ctx.synthetic``) every figure is drawn from the demo results: Figs. 5-7 show three
    different DEMO pairs, Fig. 1 uses the DEMO rows of Table 4, and every figure is stamped DEMO."""
    from benchmarks.fusion_methods import method_entries
    from benchmarks.report import is_demo

    out = Path(ctx.out_dir)
    fig_dir = out / "figures"
    written: list[Path] = []
    status: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], list[Path]]) -> None:
        try:
            paths = fn()
            written.extend(paths)
            status[name] = "written: " + ", ".join(p.name for p in paths)
        except MMDRFuseError as exc:
            status[name] = f"skipped: {exc}"
            ctx.say(f"figures: {name} skipped: {exc}")

    attempt("fig1_left", lambda: _fig1_from_tables(out, fig_dir, "DEMO" if ctx.synthetic else "MSRS"))
    entries, _ = method_entries(ctx)
    ir_shown: dict[str, Path] = {}  # figure -> the IR image it shows (Fig. 3 shows Fig. 5's)
    for fig_name, (dataset, preferred) in _qualitative_plan(ctx).items():
        attempt(fig_name, lambda f=fig_name, d=dataset, p=preferred:
                _qualitative_figure(ctx, f, d, entries, p, fig_dir, ir_shown))
    attempt("fig3", lambda: _fig3_from_source(ctx, ir_shown.get("fig5"), fig_dir))
    attempt("fig8", lambda: _fig8_from_results(out, fig_dir))
    pretrained = pretrained_table()
    if (out / f"{pretrained}.csv").is_file():  # the fine-tuned detectors (detection --pretrained)
        attempt("fig8_pretrained", lambda: _fig8_from_results(out, fig_dir, pretrained))

    prov = fig_dir / "figures.json"
    with contextlib.suppress(OSError):
        write_json(prov, {"profile": ctx.profile, "command": ctx.command,
                          "figures": status, **({"demo": True} if is_demo() else {}),
                          "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        written.append(prov)
    return written


def _fig1_from_tables(out: Path, fig_dir: Path, dataset: str) -> list[Path]:
    t3, t4 = out / "table3.csv", out / "table4.csv"
    missing = [p.name for p in (t3, t4) if not p.is_file()]
    if missing:
        raise MMDRFuseError(f"needs {', '.join(missing)} in {out} (run tables 3 and 4 first)")
    return fig1_left(pd.read_csv(t3), pd.read_csv(t4), fig_dir / "fig1_left", dataset=dataset)


def _qualitative_plan(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """Figs. 5-7 -> (data set, preferred stem): the paper's data sets, or on the demo set three different pairs."""
    if not ctx.synthetic:
        return {f: (d, None) for f, d in QUALITATIVE.items()}
    from mmdrfuse import data as dataregistry
    from mmdrfuse.images import list_images

    loc = dataregistry.find("DEMO", ctx.data_root)
    stems = sorted(list_images(loc.ir_dir)) if loc else []
    return {f: ("DEMO", stems[i % len(stems)] if stems else None) for i, f in enumerate(QUALITATIVE)}


def _qualitative_figure(ctx: Context, fig_name: str, dataset: str, entries, preferred: str | None, fig_dir: Path,
                        ir_shown: dict[str, Path]) -> list[Path]:
    """One of Figs. 5-7; records the IR image it shows in ``ir_shown``."""
    if not entries:
        raise MMDRFuseError("no fusion method can run")
    loc, stem, (ir, vis), fused = _qualitative_inputs(ctx, dataset, entries, ctx.say, preferred)
    if not fused:
        raise MMDRFuseError(f"no method produced a fused image of {dataset} pair {stem}")
    ir_shown[fig_name] = ir
    flag = "\n[" + textwrap.fill(loc.flag, 110) + "]" if loc.flag else ""
    a, b = loc.spec.slots
    return qualitative_grid({a: ir, b: vis}, fused, fig_dir / fig_name,
                            title=f"{fig_name.replace('fig', 'Fig. ')}: {dataset}, pair {stem}{flag}")


def _fig3_from_source(ctx: Context, src: Path | None, fig_dir: Path) -> list[Path]:
    """Fig. 3 of ``src`` (Fig. 5's IR image), else of the middle MSRS IR image."""
    if src is None:
        from mmdrfuse import data as dataregistry
        from mmdrfuse.images import list_images

        loc = dataregistry.find("MSRS", ctx.data_root)
        if loc is None:
            raise MMDRFuseError("needs an MSRS source image (data set not found)")
        imgs = list_images(loc.ir_dir)
        src = imgs[_choose_stem(list(imgs))]
    extractor, names, backbone = vgg_extractor(ctx.vgg_weights)
    ctx.say(f"figures: fig3 uses the {backbone} VGG-19")
    return fig3_vgg_features(src, fig_dir / "fig3_vgg_features", extractor, names,
                             backbone=backbone.split(" (")[0] + " ImageNet")


def pretrained_table() -> str:
    """The report name of the fine-tuned detectors (``pretrained.table`` of benchmarks/detection/profiles.yaml)."""
    from benchmarks.detection.config import load_config

    return load_config()["pretrained"]["table"]


def _fig8_from_results(out: Path, fig_dir: Path, table: str = "detection") -> list[Path]:
    """Fig. 8 from ``out/<table>.csv`` (written by the detection target: ``detection`` from scratch,
    ``detection_pretrained`` fine-tuned) and the times of ``out/table3.csv``; drawn as ``fig8`` /
    ``fig8_pretrained``."""
    from benchmarks.fusion_methods import fusion_times_ms

    det = out / f"{table}.csv"
    if not det.is_file():
        raise MMDRFuseError(f"needs {det.name} in {out} (run the detection target first)")
    df = pd.read_csv(det)
    stem = "fig8" + table.removeprefix("detection")
    return fig8(df, fusion_times_ms(out), fig_dir / stem, subtitle=fig8_subtitle(df))
