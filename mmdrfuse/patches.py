"""Training patches cut from any folder of IR/visible pairs.

The authors cut every LLVIP training pair into a non-overlapping 128 x 128 grid (8 x 10 = 80 patches per 1280 x 1024
image, 16,000 in all); the paper calls them "randomly cropped". Both are offered (``mode: grid | random``). Images are
read as gray exactly as for fusion (PIL ``"L"``: :func:`mmdrfuse.images.read_gray` before its /255) and kept as uint8, so
a batch (/255 then) is bit-identical to reading the patch files the authors wrote. Patch ids are 0..N-1 in (image
stem, row, column) order for the grid, (image stem, draw) order for random crops.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from mmdrfuse.errors import BadInputError
from mmdrfuse.images import gray_u8, match_stems, read_array

PATCH_MODES = ("grid", "random")


@dataclass
class PatchConfig:
    """How patches are cut from the training pairs."""

    size: int = 128  # patch side in pixels (the authors': 128)
    mode: str = "grid"  # grid: the official non-overlapping grid; random: uniform random crops
    per_image: int | None = None  # random: crops per image (required); grid: keep at most this many per image (None = all)
    max_patches: int | None = None  # keep a seeded random subset of this many patches in all (None = all)
    max_images: int | None = None  # use only the first N pairs by stem (None = all)
    seed: int = 0  # seed of the random crops and of the subset


@dataclass
class PatchSet:
    """``data``: uint8 N x 2 x S x S (channel 0 IR, 1 visible); ``origin[i] = (stem, top, left)``."""

    data: torch.Tensor
    origin: list[tuple[str, int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> int:
        return int(self.data.shape[-1])

    def batch(self, ids, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The float32 [0, 1] IR and visible patches of ``ids`` (each N x 1 x S x S), as ``read_gray`` gives them."""
        idx = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        x = self.data.index_select(0, idx).to(device=device, dtype=torch.float32) / 255.0
        return x[:, :1], x[:, 1:]


def _read_u8_pair(ir_path, vis_path) -> np.ndarray:
    """The pair as uint8 2 x H x W gray (IR first): the bytes behind :func:`mmdrfuse.images.read_pair`'s ``u8 / 255``."""
    ir, vis = gray_u8(read_array(ir_path)), gray_u8(read_array(vis_path))
    if ir.shape != vis.shape:
        raise BadInputError(f"{vis_path}: size {tuple(vis.shape)} differs from {ir_path} {tuple(ir.shape)}; "
                            "resize or register the pair first", str(vis_path))
    return np.stack([ir, vis])


def _grid_positions(h: int, w: int, s: int) -> list[tuple[int, int]]:
    return [(r * s, c * s) for r in range(h // s) for c in range(w // s)]


def build_patches(folder_ir: str | os.PathLike, folder_vis: str | os.PathLike, cfg: PatchConfig,
                  progress: bool = True) -> PatchSet:
    """Cut the patches of every pair found in ``folder_ir`` / ``folder_vis`` (paired by file stem)."""
    if cfg.mode not in PATCH_MODES:
        raise ValueError(f"unknown patch mode {cfg.mode!r}; expected one of {PATCH_MODES}")
    if cfg.mode == "random" and not cfg.per_image:
        raise ValueError("random patches need per_image (crops per image)")
    pairs = match_stems(folder_ir, folder_vis)
    if cfg.max_images:
        pairs = pairs[: cfg.max_images]
    rng = np.random.default_rng(cfg.seed)
    s = cfg.size
    chunks: list[np.ndarray] = []
    origin: list[tuple[str, int, int]] = []
    for pair in tqdm(pairs, desc="patches", unit="pair", disable=not progress, leave=False):
        both = _read_u8_pair(pair.ir, pair.vis)
        h, w = both.shape[-2:]
        if h < s or w < s:
            raise BadInputError(f"{pair.ir}: {h}x{w} is smaller than the {s}x{s} patch size; lower data.patch_size "
                                "or remove the pair", str(pair.ir))
        if cfg.mode == "grid":
            pos = _grid_positions(h, w, s)
            if cfg.per_image:
                pos = pos[: cfg.per_image]
        else:
            pos = [(int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))) for _ in range(cfg.per_image)]
        for top, left in pos:
            chunks.append(both[:, top:top + s, left:left + s])
            origin.append((pair.stem, top, left))
    keep = np.arange(len(chunks))
    if cfg.max_patches and cfg.max_patches < len(chunks):
        keep = np.sort(rng.choice(len(chunks), size=cfg.max_patches, replace=False))
    data = torch.from_numpy(np.stack([chunks[i] for i in keep]))
    return PatchSet(data, [origin[i] for i in keep])


def shard_ids(n: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """The patch ids owned by ``rank``: ``id % world == rank``, truncated to ``n // world`` so every rank has as many."""
    ids = np.arange(rank, n, world, dtype=np.int64)
    return ids[: n // world]


def epoch_order(ids: np.ndarray, seed: int, epoch: int, rank: int = 0) -> np.ndarray:
    """A deterministic shuffle of ``ids`` for ``epoch`` (independent of any earlier epoch, so resume is exact)."""
    rng = np.random.default_rng([seed, epoch, rank])
    return ids[rng.permutation(len(ids))]
