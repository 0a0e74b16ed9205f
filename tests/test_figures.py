"""The paper's figures: each figure function draws a non-empty PNG + PDF from a tiny fake cached set."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import figures as F
from benchmarks.run import Context
from mmdrfuse.errors import MMDRFuseError

COLS = ["table", "dataset", "method", "weights", "metric", "value", "source", "n_pairs", "profile"]


def _row(table, dataset, method, weights, metric, value, source="ours"):
    return dict(zip(COLS, [table, dataset, method, weights, metric, value, source, 3, "quick"]))


def _check_outputs(paths: list[Path]) -> None:
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
    png = np.asarray(Image.open(next(p for p in paths if p.suffix == ".png")).convert("L"))
    assert png.std() > 1  # something was drawn
    assert not list(paths[0].parent.glob(".*tmp*"))  # atomic writes left no temp files


def _scene(h=48, w=64, seed=0) -> np.ndarray:
    """A flat image with one textured square (the only place with gradient energy) at rows 8..24, cols 36..52."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 100, np.uint8)
    img[8:24, 36:52] = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    return img


# ------------------------------------------------------------------------------------------------------- fig 8
def _detection_df():
    rows = []
    for m, w, v in [("MMDRFuse", "official", 0.31), ("LRRNet", "default", 0.35), ("IR-only", "none", 0.28),
                    ("visible-only", "none", 0.20)]:
        rows += [_row("detection", "MSRS", m, w, "mAP50-95", v), _row("detection", "MSRS", m, w, "mAP50", v + 0.3)]
    return pd.DataFrame(rows, columns=COLS)


def test_fig8_with_times(tmp_path):
    _check_outputs(F.fig8(_detection_df(), {"MMDRFuse": 0.9, "LRRNet": 800.0}, tmp_path / "fig8", subtitle="t"))


def test_fig8_without_times_falls_back_to_bars(tmp_path):
    _check_outputs(F.fig8(_detection_df(), {}, tmp_path / "fig8"))


@pytest.mark.parametrize("times", [{"MMDRFuse": 0.9, "LRRNet": 800.0}, {}], ids=["points", "bars"])
def test_fig8_draws_seed_spread(tmp_path, times):
    """``<metric>_std`` rows (several detector seeds) add error bars / bands: the picture changes, nothing breaks."""
    df = _detection_df()
    spread = pd.DataFrame([_row("detection", "MSRS", m, w, "mAP50-95_std", 0.05)
                           for m, w in [("MMDRFuse", "official"), ("LRRNet", "default"), ("IR-only", "none")]],
                          columns=COLS)
    plain = F.fig8(df, times, tmp_path / "plain")
    with_std = F.fig8(pd.concat([df, spread], ignore_index=True), times, tmp_path / "std")
    _check_outputs(with_std)
    a, b = (np.asarray(Image.open(next(p for p in ps if p.suffix == ".png")).convert("L"), dtype=float)
            for ps in (plain, with_std))
    assert a.shape == b.shape and np.abs(a - b).sum() > 0


def test_fig8_from_each_detection_report(tmp_path):
    """fig8 from detection.csv (from scratch), fig8_pretrained from detection_pretrained.csv when it exists."""
    _detection_df().to_csv(tmp_path / "detection.csv", index=False)
    pre = _detection_df().assign(table="detection_pretrained", profile="cpu-pretrained")
    pre.to_csv(tmp_path / "detection_pretrained.csv", index=False)
    _check_outputs(F._fig8_from_results(tmp_path, tmp_path / "fig"))
    pretrained = F._fig8_from_results(tmp_path, tmp_path / "fig", F.pretrained_table())
    _check_outputs(pretrained)
    assert sorted(p.name for p in pretrained) == ["fig8_pretrained.pdf", "fig8_pretrained.png"]
    with pytest.raises(MMDRFuseError, match="needs detection_pretrained.csv"):
        F._fig8_from_results(tmp_path / "fig", tmp_path / "fig", F.pretrained_table())


def test_fig8_subtitle_from_the_detection_rows():
    assert F.fig8_subtitle(_detection_df()) == "MSRS, quick profile, 3 test pairs"
    mixed = pd.concat([_detection_df(), _detection_df().assign(dataset="LLVIP", n_pairs=250)])
    assert F.fig8_subtitle(mixed) == "quick profile"


def test_fusion_times_from_table3(tmp_path):
    from benchmarks.fusion_methods import fusion_times_ms
    pd.DataFrame([_row("table3", "-", "MMDRFuse", "official", "Time_ms", 1.5),
                  _row("table3", "-", "MMDRFuse", "official", "Time_ms", 0.8, source="paper"),
                  _row("table3", "-", "LRRNet", "default", "Size_KB", 200)], columns=COLS).to_csv(
        tmp_path / "table3.csv", index=False)
    assert fusion_times_ms(tmp_path) == {"MMDRFuse": 1.5}
    assert fusion_times_ms(tmp_path / "none") == {}


def test_fig8_needs_rows(tmp_path):
    with pytest.raises(MMDRFuseError, match="mAP50-95"):
        F.fig8(_detection_df().assign(source="paper"), {}, tmp_path / "fig8")


# ------------------------------------------------------------------------------------------------------- fig 1
def _tables():
    t3 = pd.DataFrame([_row("table3", "-", m, w, k, v) for m, w, s, t in
                       [("MMDRFuse", "official", 0.44, 0.5), ("LRRNet", "default", 190.0, 120.0),
                        ("TarDAL", "default", 1100.0, 60.0)]
                       for k, v in (("Size_KB", s), ("Time_ms", t))], columns=COLS)
    t4 = pd.DataFrame([_row("table4", "MSRS", m, w, k, v) for m, w, sd, vif in
                       [("MMDRFuse", "official", 8.9, 0.96), ("MMDRFuse", "mmdrfuse-cpu", 8.0, 0.9),
                        ("LRRNet", "default", 6.9, 0.54), ("TarDAL", "default", 7.3, 0.68)]
                       for k, v in (("SD", sd), ("VIF", vif))], columns=COLS)
    return t3, t4


def test_fig1_left(tmp_path):
    t3, t4 = _tables()
    _check_outputs(F.fig1_left(t3, t4, tmp_path / "fig1_left"))


def test_fig1_left_without_matching_rows(tmp_path):
    t3, t4 = _tables()
    with pytest.raises(MMDRFuseError, match="RoadScene"):
        F.fig1_left(t3, t4, tmp_path / "fig1", dataset="RoadScene")


# -------------------------------------------------------------------------------------------------- figs 5-7
def test_pick_boxes_finds_texture_and_stays_inside():
    a = _scene()
    boxes = F.pick_boxes([a, a], n=2, frac=0.25)
    assert len(boxes) == 2
    (x, y, w, h) = boxes[0]
    assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 48
    # the first box overlaps the textured square (rows 8..24, cols 36..52)
    assert x < 52 and x + w > 36 and y < 24 and y + h > 8
    (x2, y2, w2, h2) = boxes[1]
    assert x2 + w2 <= x or x + w <= x2 or y2 + h2 <= y or y + h <= y2  # no overlap


def test_zoom_panel_keeps_shape_and_marks_boxes():
    img = np.repeat(_scene()[..., None], 3, axis=-1)
    out = F.zoom_panel(img, [(36, 8, 16, 16), (4, 4, 8, 8)], zoom=2.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[8, 40]) == F.BOX_COLORS[0]           # outline of box 1
    assert not np.array_equal(out[-4:, :8], img[-4:, :8])   # zoomed inset pasted bottom-left


def _write(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_qualitative_grid(tmp_path):
    ir = _write(tmp_path / "ir/x.png", _scene(seed=1))
    vis = _write(tmp_path / "vi/x.png", np.stack([_scene(seed=2)] * 3, -1))
    fused = {f"M{i}": _write(tmp_path / f"f{i}/x.png", _scene(seed=3 + i)) for i in range(5)}
    _check_outputs(F.qualitative_grid({"IR": ir, "VIS": vis}, fused, tmp_path / "fig5", title="t"))
    bad = _write(tmp_path / "bad/x.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(MMDRFuseError, match="differ in size"):
        F.qualitative_grid({"IR": ir}, {"bad": bad}, tmp_path / "fig_bad")


# ------------------------------------------------------------------------------------------------------- fig 3
def _fake_extractor(x: torch.Tensor) -> list[torch.Tensor]:
    """Stand-in for the VGG taps in a plotting test: 5 maps at halving resolutions."""
    return [torch.nn.functional.avg_pool2d(x.expand(-1, 4, -1, -1), 2 ** i) for i in range(5)]


def test_fig3_with_an_extractor(tmp_path):
    src = _write(tmp_path / "ir.png", _scene(64, 64))
    _check_outputs(F.fig3_vgg_features(src, tmp_path / "fig3", _fake_extractor, names=list("abcde"), max_side=32))


def test_fig3_refuses_random_or_missing_vgg(monkeypatch):
    from mmdrfuse import vgg

    def missing(*a, **k):
        raise vgg.BackboneNotFoundError("no VGG-19 ImageNet weights found")

    monkeypatch.setattr(vgg, "load_vgg", missing)
    with pytest.raises(MMDRFuseError, match="no VGG-19"):
        F.vgg_extractor()
    monkeypatch.setattr(vgg, "load_vgg", lambda *a, **k: SimpleNamespace(backbone="random"))
    with pytest.raises(MMDRFuseError, match="random"):
        F.vgg_extractor()


# --------------------------------------------------------------------------------------------------- harness
@dataclass
class _FoldersContext(Context):
    """The harness context with every fused image already in ``<fused_root>/<data set>/<method>/`` (no cache)."""

    fused_root: Path | None = None

    def fused_dir(self, method: str, dataset: str, weights: str | None = None, max_pairs: int | None = None) -> Path:
        return self.fused_root / dataset / method


def test_run_with_fake_cache(tmp_path, monkeypatch):
    root = tmp_path / "data"
    layouts = {"MSRS": ("MSRS/test/ir", "MSRS/test/vi"), "LLVIP": ("LLVIP/test_samples/ir", "LLVIP/test_samples/vi"),
               "MRI-PET": ("MRI_PET/MRI", "MRI_PET/PET")}
    for ds, (a, b) in layouts.items():
        for stem in ("s1", "s2"):
            _write(root / a / f"{stem}.png", _scene(seed=1))
            _write(root / b / f"{stem}.png", _scene(seed=2))
            for m in ("MMDRFuse", "LRRNet"):
                _write(tmp_path / "cache" / ds / m / f"{stem}.png", _scene(seed=3))
    out = tmp_path / "results"
    t3, t4 = _tables()
    out.mkdir()
    t3.to_csv(out / "table3.csv", index=False)
    t4.to_csv(out / "table4.csv", index=False)
    _detection_df().to_csv(out / "detection.csv", index=False)
    from mmdrfuse import vgg
    monkeypatch.setattr(vgg, "load_vgg", lambda *a, **k: (_ for _ in ()).throw(vgg.BackboneNotFoundError("none")))
    ctx = _FoldersContext(profile="quick", settings={}, data_root=root, weights_root=tmp_path, out_dir=out,
                          methods=["MMDRFuse", "LRRNet"], fused_root=tmp_path / "cache")
    ctx._runs = ([SimpleNamespace(label=m, method=m, weights=w, kind=k)
                  for m, w, k in (("MMDRFuse", "official", "mmdrfuse"), ("LRRNet", "default", "learned"))], {})
    written = F.run(ctx)
    status = json.loads((out / "figures/figures.json").read_text())["figures"]
    for name in ("fig1_left", "fig5", "fig6", "fig7", "fig8"):
        assert status[name].startswith("written"), status[name]
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert status["fig3"].startswith("skipped") and "none" in status["fig3"]
    assert not (out / "figures/fig3_vgg_features.png").exists()
    assert len([p for p in written if p.suffix == ".pdf"]) == 5


def test_pick_boxes_keeps_the_magnified_corners_clear():
    """The strongest texture sits in the bottom-left corner, where zoom_panel pastes the first magnified crop: with
    ``zoom`` no box reaches into either corner crop's rectangle (it would be hidden), without it the box goes there."""
    rng = np.random.default_rng(0)
    a = np.full((120, 160), 128, np.uint8)
    a[90:120, 0:30] = rng.integers(0, 256, (30, 30))  # strong texture in the bottom-left corner
    a[10:40, 60:90] = 128 + rng.integers(-20, 21, (30, 30))  # weaker texture in the upper middle
    plain = F.pick_boxes([a], n=1, frac=0.25)
    assert plain[0][0] < 30 and plain[0][1] + plain[0][3] > 90
    boxes = F.pick_boxes([a], n=2, frac=0.25, zoom=2.0)
    zw, zh = F.inset_size(30, 30, 120, 160, 2.0)
    assert len(boxes) == 2
    for x, y, w, h in boxes:
        in_bottom = y + h > 120 - zh
        assert not (in_bottom and x < zw) and not (in_bottom and x + w > 160 - zw)
    out = F.zoom_panel(np.repeat(a[..., None], 3, -1), boxes, zoom=2.0)
    for i, (x, y, w, h) in enumerate(boxes):  # every box's outline still shows
        assert tuple(out[y, x + w // 2]) == F.BOX_COLORS[i]
