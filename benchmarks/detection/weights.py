"""The detector's initial weights: named files under the weights root, and reading a plain state dict.

``--yolo-weights`` (``$MMDRFUSE_YOLO_WEIGHTS``, the harness's ``--yolo-weights`` / ``ctx.yolo_weights``, or a profile's
``yolo_weights`` key) names either

- an Ultralytics checkpoint (e.g. ``yolov5nu.pt``): Ultralytics' own loader transfers it (``pretrained=PATH``), or
- a plain state dict (``{name: tensor}``, or ``{"state_dict": {name: tensor}, ...}``, e.g. YOLOv5 v6.1's COCO
  ``yolov5n`` weights): :func:`benchmarks.detection.yolo.initial_weights` moves every tensor whose name and shape
  match the profile's model (backbone and neck: YOLOv5 v6 and Ultralytics' v5u share them) and the head starts
  fresh;

by a path, or by a name of :data:`YOLO_WEIGHTS` (looked up under the weights root and checked against its sha256).
Reading files here needs torch only; building the model is :mod:`.yolo`'s (the only module importing Ultralytics).
"""
from __future__ import annotations

import os
from pathlib import Path

from mmdrfuse import paths
from mmdrfuse.checkpoints import NamedWeights
from mmdrfuse.download import sha256_file
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.names import unknown

YOLO_WEIGHTS: dict[str, NamedWeights] = {
    "yolov5n-coco": NamedWeights(
        "yolov5n-coco", "detector", "detection/yolov5n_v6.1_coco_state_dict.pt",
        "b9610358a5bf931c1934a68916e2a11bcf82f2681a8006a1a0461b0969adabec",
        description="YOLOv5n trained on COCO by ultralytics/yolov5 (release v6.1, EMA weights), as a plain state "
                    "dict {'state_dict', 'names'}; backbone + neck transfer into yolov5n.yaml, the head starts fresh "
                    "(no public address for this conversion: online, Ultralytics' yolov5nu.pt is the equivalent)"),
}


def resolve_yolo_weights(value: str | os.PathLike | None,
                         weights_root: str | os.PathLike | None = None) -> Path | None:
    """A name of :data:`YOLO_WEIGHTS` or a path -> an existing file (None stays None: train from scratch).

    A name is looked up under the weights root (``--weights-root`` > ``$MMDRFUSE_WEIGHTS`` > cache) and must have its
    pinned sha256. A relative path is tried in the current folder, then under the weights root. Anything else fails
    in one line (an unknown name with a "did you mean")."""
    if value is None or str(value).strip() == "":
        return None
    s = str(value)
    if s in YOLO_WEIGHTS:
        entry = YOLO_WEIGHTS[s]
        p = entry.local_path(weights_root)
        if not p.is_file():
            raise BadInputError(f"YOLO weights {s!r} not found at {p}; point --weights-root / ${paths.WEIGHTS_ENV} "
                                f"at the folder holding {entry.relpath}, or pass a file to --yolo-weights "
                                "(online, Ultralytics' yolov5nu.pt from github.com/ultralytics/assets/releases is "
                                "the equivalent)", str(p))
        if entry.sha256 and sha256_file(p) != entry.sha256:
            raise BadInputError(f"{p}: not the file named {s!r} (sha256 differs from the pinned "
                                f"{entry.sha256[:12]}...); replace it or pass the file by path", str(p))
        return p
    p = Path(s).expanduser()
    if p.is_file():
        return p.resolve()
    if not p.is_absolute() and (paths.weights_root(weights_root) / p).is_file():
        return (paths.weights_root(weights_root) / p).resolve()
    if p.suffix or os.sep in s or "/" in s:
        raise BadInputError(f"{p}: YOLO weights not found; pass an existing .pt file (--yolo-weights / "
                            "$MMDRFUSE_YOLO_WEIGHTS / a profile's yolo_weights) or none to train from scratch", str(p))
    raise unknown("YOLO weights", s, YOLO_WEIGHTS)


def read_state_dict(path: str | os.PathLike):
    """The tensors of a plain state dict file (``{name: tensor}`` or ``{"state_dict": {name: tensor}, ...}``), read
    with ``torch.load(weights_only=True)``; None when the file is a torch file of another kind (e.g. an Ultralytics
    checkpoint, which pickles modules). A file torch cannot read at all fails in one line."""
    import pickle

    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return None  # pickled objects beyond tensors: not a plain state dict (maybe an Ultralytics checkpoint)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise BadInputError(f"{path}: not a readable torch file ({exc.__class__.__name__}); pass an Ultralytics "
                            "checkpoint (.pt) or a YOLOv5 state dict to --yolo-weights", str(path)) from None
    for candidate in (obj, obj.get("state_dict") if isinstance(obj, dict) else None,
                      obj.get("model") if isinstance(obj, dict) else None):
        if isinstance(candidate, dict) and candidate and all(isinstance(v, torch.Tensor) for v in candidate.values()):
            return dict(candidate)
    raise MMDRFuseError(f"{path}: neither a state dict (name -> tensor, or {{'state_dict': ...}}) nor an Ultralytics "
                        "checkpoint; pass one of those to --yolo-weights")
