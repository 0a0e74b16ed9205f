"""Shared fixtures: where ../shared lives (data, weights, reference values), skipped with a reason when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# No test downloads from the internet: `benchmarks.run` fetches nothing while this is set (mmdrfuse.download). The
# download tests unset it and point $MMDRFUSE_MIRROR at a local HTTP server on 127.0.0.1.
os.environ["MMDRFUSE_OFFLINE"] = "1"


def _shared_dir() -> Path | None:
    env = os.environ.get("MMDRFUSE_DATA")
    candidates = [Path(env).parent] if env else []
    candidates.append(REPO.parent / "shared")
    for c in candidates:
        if (c / "data").is_dir():
            return c
    return None


SHARED = _shared_dir()


def _need(sub: str) -> Path:
    if SHARED is None or not (SHARED / sub).exists():
        pytest.skip(f"../shared/{sub} not found (set MMDRFUSE_DATA or place shared/ beside the repo)")
    return SHARED / sub


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (MSRS, RoadScene, MRI_PET, MRI_SPECT, LLVIP samples)."""
    env = os.environ.get("MMDRFUSE_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return _need("data")


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """../shared/weights (official/ and baselines/)."""
    env = os.environ.get("MMDRFUSE_WEIGHTS")
    if env and Path(env).is_dir():
        return Path(env)
    return _need("weights")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """../shared/reference (official outputs, loss values, metric reference values)."""
    return _need("reference")


@pytest.fixture(autouse=True)
def _restore_pil_open():
    """Importing Ultralytics replaces PIL.Image.open process-wide (benchmarks.detection undoes it for its own import;
    a bare ``import ultralytics`` in a test does not): keep every test on Pillow's own opener."""
    from PIL import Image

    original = Image.open
    if getattr(original, "__module__", "").startswith("ultralytics"):
        import ultralytics.utils.patches as up

        original = up._image_open
    Image.open = original
    yield
    Image.open = original


@pytest.fixture
def one_torch_thread():
    """Small tensors: one intra-op thread is as fast, and much faster when other processes keep the cores busy."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
