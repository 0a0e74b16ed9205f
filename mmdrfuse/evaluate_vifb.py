"""``mmdrfuse evaluate --convention vifb``: a folder of fused images with VIFB's metrics, reading and names.

:func:`evaluate_folder_vifb` is what :func:`mmdrfuse.evaluate.evaluate_folder` runs for ``convention="vifb"``: the
same pairing by stem, errors and ``skip_bad`` behaviour, but images are read as MATLAB's ``imread`` gives them to
VIFB (colour kept: :func:`mmdrfuse.metrics.vifb.read_vifb`) and the metrics are
:func:`mmdrfuse.metrics.vifb.compute_all`'s: on CPU in float64 with the C kernels, the default convention's pipeline
(one pair per worker thread); otherwise one pair at a time (the channels of a colour image form the batch).
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Iterable

import torch

from mmdrfuse.errors import BadInputError
from mmdrfuse.images import Pair, match_stems, pair_rows, read_ahead
from mmdrfuse.metrics import _native, vifb


def _read(pair: Pair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fused, ir, vis) of one pair as C x H x W uint8 tensors; BadInputError on unreadable or mismatched sizes."""
    imgs = [vifb.read_vifb(p) for p in pair.paths]
    size = imgs[0].shape[-2:]
    for p, img in zip(pair.paths[1:], imgs[1:]):
        if img.shape[-2:] != size:
            raise BadInputError(f"{pair.paths[0]}: size {tuple(size)} differs from {p} {tuple(img.shape[-2:])}; "
                                "fuse the pair again or remove it (or pass --skip-bad)", str(pair.paths[0]))
    return imgs[0], imgs[1], imgs[2]


def _check_size(pair: Pair, f: torch.Tensor, names: list[str], need: int) -> None:
    if min(f.shape[-2:]) < need:
        small = [n for n in names if vifb.get(n).min_size > min(f.shape[-2:])]
        raise BadInputError(f"{pair.paths[0]}: {f.shape[-2]} x {f.shape[-1]} is too small for {', '.join(small)} "
                            f"(needs >= {need} x {need}); drop those metrics or the image", str(pair.paths[0]))


def _evaluate_pair(pair: Pair, names: list[str], need: int) -> dict[str, float]:
    """Read one pair and compute its VIFB metrics on this thread alone (a pipeline worker's job); the values equal
    :func:`mmdrfuse.metrics.vifb.compute_all`'s on the same images."""
    f, a, b = _read(pair)
    _check_size(pair, f, names, need)
    with _native.thread_limit(1):
        vals = vifb.compute_all(f[None], a[None], b[None], names)
    return {k: v.item() for k, v in vals.items()}


def evaluate_folder_vifb(fused_dir: str | os.PathLike, ir_dir: str | os.PathLike, vis_dir: str | os.PathLike,
                         metrics: Iterable[str] | None = None, *, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float64, skip_bad: bool = False, skipped: list[str] | None = None,
                         progress: bool = True, read_workers: int = 2):
    """VIFB's metrics of every fused image in ``fused_dir`` against its (IR, VIS) sources: a DataFrame with a
    ``stem`` column and one column per VIFB metric (VIFB's names and order by default; one row per image, sorted by
    stem). Bad pairs raise :class:`BadInputError` or, with ``skip_bad``, are listed in ``skipped`` (and
    ``df.attrs["skipped"]``)."""
    import pandas as pd
    from tqdm import tqdm

    names = vifb.resolve(metrics)
    need = vifb.min_size(names)
    skipped = [] if skipped is None else skipped
    pairs = match_stems(fused_dir, ir_dir, vis_dir, skip_bad=skip_bad, skipped=skipped)
    dev = torch.device(device)
    rows: list[dict] = []
    bar = tqdm(total=len(pairs), desc="evaluate (vifb)", unit="pair", disable=not progress, file=sys.stderr)
    try:
        if dev.type == "cpu" and dtype == torch.float64 and _native.available():
            # the default convention's pipeline: one worker per torch thread, each reading and computing whole pairs
            # single-threaded (the C kernels and torch's FFTs release the GIL). Measured on 361 MSRS pairs, whole
            # command, 2 threads: see docs/performance.md, "VIFB's metrics".
            with _native.one_thread_each() as workers:
                job = functools.partial(_evaluate_pair, names=names, need=need)
                rows = pair_rows(pairs, job, workers, skip_bad=skip_bad, skipped=skipped, bar=bar)
        else:  # any device or dtype: read ahead, compute here (the channels of a colour pair are the batch)
            for pair, fut in read_ahead(pairs, _read, read_workers, depth=4):
                bar.update(1)
                try:
                    f, a, b = fut.result()
                    _check_size(pair, f, names, need)
                except BadInputError as exc:
                    if not skip_bad:
                        raise
                    skipped.append(str(exc))
                    continue
                vals = vifb.compute_all(*(x[None].to(dev) for x in (f, a, b)), names, dtype=dtype)
                rows.append({"stem": pair.stem, **{k: v.item() for k, v in vals.items()}})
    finally:
        bar.close()
    if not rows:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise BadInputError(f"{fused_dir}: no pair could be evaluated ({len(skipped)} skipped{first})", str(fused_dir))
    df = pd.DataFrame(rows, columns=["stem"] + names)
    df.attrs["skipped"] = list(skipped)
    return df
