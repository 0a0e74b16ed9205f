"""MMDRFuse reproduction suite: the 113-parameter fusion model, its training recipe, metrics and the paper's tables.

Paper: Y. Deng, T. Xu, C. Cheng, X.-J. Wu, J. Kittler, "MMDRFuse: Distilled Mini-Model with Dynamic Refresh for
Multi-Modality Image Fusion", ACM Multimedia 2024.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Student", "Teacher", "load_model", "fuse_pair", "fuse_folder", "__version__"]


def __getattr__(name):  # lazy: importing mmdrfuse stays cheap
    if name in ("Student", "Teacher"):
        from mmdrfuse import models
        return getattr(models, name)
    if name == "load_model":
        from mmdrfuse.checkpoints import load_model
        return load_model
    if name == "fuse_pair":
        from mmdrfuse.fusion import fuse_pair
        return fuse_pair
    if name == "fuse_folder":
        from mmdrfuse.folders import fuse_folder
        return fuse_folder
    raise AttributeError(f"module 'mmdrfuse' has no attribute {name!r}")
