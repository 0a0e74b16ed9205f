"""What every target of ``python -m benchmarks.run`` gets: the :class:`Context` (settings of the profile, folders,
the method rows and the fused-image cache), and the harness profiles (``benchmarks/profiles.yaml``)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from mmdrfuse.errors import MMDRFuseError

PROFILES_FILE = Path(__file__).resolve().parent / "profiles.yaml"


def load_profiles(path: str | os.PathLike = PROFILES_FILE) -> dict:
    """The harness profiles (quick | cpu | paper): the settings of Tables 3-5 and the demo; the other targets read
    their own settings of the same name (docs/benchmarks.md, "Profiles")."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass
class Context:
    """What every target gets: settings, folders, the method rows and the fused-image cache."""

    profile: str
    settings: dict
    data_root: Path
    weights_root: Path
    out_dir: Path
    methods: list[str] | None = None  # restrict to these method names (None = all)
    datasets: list[str] | None = None  # restrict to these data sets (None = the profile's)
    device: str = "cpu"
    seeds: list[int] | None = None  # training seeds for table1/table2/detection (None = each profile's)
    cache: object = None  # benchmarks.cache.FusedCache
    command: str = ""
    progress: bool = True
    evaluator: Callable | None = None  # per-image metrics function (tests pass a fake); None = the suite's metrics
    synthetic: bool = False  # set when no real data was found and the demo set is used (data_root = the demo's)
    searched_data_root: Path | None = None  # the data root searched (data_root before the demo stood in)
    work_dir: Path | None = None  # heavy files of the training targets (None: ablations beside the cache,
    #                               detection under <user cache>/mmdrfuse/detection)
    yolo_weights: str | None = None  # initial detector weights (None: $MMDRFUSE_YOLO_WEIGHTS, else from scratch)
    pretrained: bool = False  # detection: the paper's fine-tuning from COCO weights (detection/profiles.yaml)
    vgg_weights: str | None = None  # VGG-19 weights of Fig. 3 (None: mmdrfuse.vgg's search)
    figure_stems: dict[str, str] | None = None  # data set -> pair shown in Figs. 5-7 (None: chosen by the figures)
    downloads: list[dict] = field(default_factory=list)  # files fetched for this run (address, sha256)
    log: list[str] = field(default_factory=list)
    _runs: tuple | None = field(default=None, repr=False)
    _demo_loc: object = field(default=None, repr=False)

    # ---------------------------------------------------------------------------------------------- data sets
    def demo_root(self) -> Path:
        return Path(self.cache.root) / "_demo_data"

    def datasets_for(self, names: list[str]) -> tuple[list, dict[str, str]]:
        """Located data sets among ``names`` (filtered by ``--datasets``) and {name: why missing}.

        When none of the paper's data sets is found anywhere, the synthetic demo set stands in (``self.synthetic``).
        """
        from mmdrfuse import data

        if self.synthetic:
            return [self._demo()], {}
        only = None if self.datasets is None else {data.get(d).name for d in self.datasets}
        wanted = [n for n in names if only is None or data.get(n).name in only]
        found, missing = [], {}
        for n in wanted:
            loc = data.find(n, self.data_root)
            if loc is None:
                try:
                    data.locate(n, self.data_root)
                except MMDRFuseError as exc:
                    missing[n] = str(exc)
            else:
                found.append(loc)
        return found, missing

    def _demo(self):
        """The demo set (written once per run under the cache: ``<cache>/_demo_data/DEMO``)."""
        from mmdrfuse import data, demo

        if self._demo_loc is None:
            root = self.demo_root()
            demo.write_demo(root, n_pairs=int(self.settings.get("demo_pairs", demo.DEFAULT_PAIRS)))
            self._demo_loc = data.locate("DEMO", root)
        return self._demo_loc

    def max_pairs(self, run) -> int | None:
        mp = self.settings.get("max_pairs", {}) or {}
        return mp.get("mmdrfuse" if run.kind == "mmdrfuse" else "baselines")

    # ------------------------------------------------------------------------------------------------ methods
    def method_runs(self) -> tuple[list, dict[str, str]]:
        """(runs, unavailable): MMDRFuse official + ours, then every baseline that can run; filtered by --methods."""
        if self._runs is None:
            from benchmarks import cache as bc

            runs, missing = bc.mmdrfuse_runs(self.weights_root, self.device)
            which = self.settings.get("baselines", "default")
            b_runs, b_missing = bc.baseline_runs(self.weights_root, self.device, which)
            runs += b_runs
            missing.update(b_missing)
            if self.methods is not None:
                want = {m.lower() for m in self.methods}
                runs = [r for r in runs if r.method.lower() in want or r.label.lower() in want]
                missing = {k: v for k, v in missing.items() if k.split(" (")[0].lower() in want or k.lower() in want}
            self._runs = (runs, missing)
        return self._runs

    def find_run(self, method: str, weights: str | None = None):
        runs, missing = self.method_runs()
        for r in runs:
            if r.method.lower() == method.lower() and (weights is None or r.weights == weights):
                if weights is None and r.kind == "mmdrfuse" and r.weights != "official":
                    continue  # MMDRFuse alone means the official weights
                return r
        reason = missing.get(method) or missing.get(f"{method} ({weights})") or "not in the method list"
        raise MMDRFuseError(f"method {method!r}{f' with weights {weights!r}' if weights else ''} cannot run: {reason}")

    def fused_dir(self, method: str, dataset: str, weights: str | None = None, max_pairs: int | None = None) -> Path:
        """Folder of fused PNGs (``<stem>.png``) of ``method`` on ``dataset``, fused now if not cached."""
        from mmdrfuse import data

        run = self.find_run(method, weights)
        loc = self._demo() if (self.synthetic and dataset.upper() == "DEMO") else data.locate(dataset, self.data_root)
        pairs = self.cache.select(loc, max_pairs)
        return self.cache.ensure(run, loc, pairs).folder

    def say(self, msg: str) -> None:
        """The targets' one logger: ``msg`` to stderr, kept in ``log`` (FLAG lines reach the summary)."""
        self.log.append(msg)
        print(msg, file=sys.stderr)
