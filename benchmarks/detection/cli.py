"""``python -m benchmarks.detection``: the detection benchmark without the harness, on folders of fused images.

    python -m benchmarks.detection --profile quick --fused MMDRFuse=/path/to/fused/MSRS [--out DIR]   # ./results

Fig. 8 is then drawn by ``python -m benchmarks.run figures --out DIR`` (from ``detection.csv`` and ``table3.csv``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.detection.benchmark import detection_benchmark
from benchmarks.detection.config import YOLO_WEIGHTS_ENV, load_profile
from benchmarks.detection.data import resolve_dataset
from benchmarks.detection.report import finish
from benchmarks.detection.weights import YOLO_WEIGHTS, resolve_yolo_weights
from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.paths import cache_dir, data_root, results_dir

DESCRIPTION = "Pedestrian detection on fused images (paper Sec. 4.5, Fig. 8) with Ultralytics YOLOv5."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=DESCRIPTION)
    p.add_argument("--profile", default="quick")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="results folder (default: ./results)")
    p.add_argument("--dataset", default=None, help="detection dataset (default: the profile's)")
    p.add_argument("--fused", action="append", default=[], metavar="METHOD=DIR",
                   help="a folder of fused images named by stem for METHOD (repeatable)")
    p.add_argument("--yolo-weights", default=os.environ.get(YOLO_WEIGHTS_ENV),
                   help="initial detector weights: an Ultralytics checkpoint (.pt), a YOLOv5 v6 state dict (backbone "
                        f"and neck transferred) or a name ({', '.join(YOLO_WEIGHTS)}, under the weights root); "
                        f"default: ${YOLO_WEIGHTS_ENV}, else the profile's yolo_weights, else from scratch")
    p.add_argument("--weights-root", default=None,
                   help=f"where named weights live (default: ${paths.WEIGHTS_ENV}, else the cache)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-sources", action="store_true", help="skip the IR-only and visible-only rows")
    p.add_argument("--pretrained", action="store_true",
                   help="fine-tune from the COCO-trained YOLOv5n as the paper (the YAML's 'pretrained' settings over "
                        "the profile); results in detection_pretrained.*")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="detector training seeds (default: the profile's); rows are the mean (± std) over them")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        prof = load_profile(args.profile, seeds=args.seeds, pretrained=args.pretrained)
        yolo_weights = resolve_yolo_weights(args.yolo_weights or prof.yolo_weights, args.weights_root)
        out = results_dir(args.out).resolve()
        work = cache_dir() / "detection"
        data = resolve_dataset(args.dataset or prof.dataset, data_root(args.data_root), work / "labels")
        split = data.split.limited(prof.n_train, prof.n_test)
        image_dirs: dict[str, list[Path]] = {}
        for item in args.fused:
            name, sep, folder = item.partition("=")
            if not sep:
                raise MMDRFuseError(f"--fused {item!r}: expected METHOD=DIR")
            image_dirs[name] = [Path(folder)]
        if not args.no_sources:
            image_dirs.update({"IR-only": data.ir, "visible-only": data.vis})
        if not image_dirs:
            raise MMDRFuseError("nothing to run: give --fused METHOD=DIR or drop --no-sources")
        per_seed: list[dict] = []
        df = detection_benchmark(image_dirs, data.labels_dir, split, prof, out, dataset=data.name, work_dir=work,
                                 keep_class=data.person_class, device=args.device, yolo_weights=yolo_weights,
                                 per_seed_out=per_seed)
        for path in finish(df, out, prof, data, split, yolo_weights, per_seed=per_seed):
            print(f"wrote {path}")
        print(f"Fig. 8 (from {prof.table}.csv and table3.csv): python -m benchmarks.run figures --out {out}")
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
