"""Evaluation data sets: a registry (name -> layout, paper count, public source), lookup and download.

The data root is ``--data-root`` > ``$MMDRFUSE_DATA`` > ``<user cache>/data`` (:func:`mmdrfuse.paths.data_root`);
the first one that is set is used. Inside it every data set has the layout the registry names, e.g.
``MSRS/test/{ir,vi}``; several layouts can be listed (the full set's own layout first), the first one present wins.

A data set found with fewer pairs than the paper used (LLVIP: the 15 public sample pairs of the LLVIP repository,
bupt-ai-cz/LLVIP FusionGAN/Test_LLVIP_*, instead of the 250-pair test split) is still used, and
:attr:`Located.flag` carries the warning every report that uses it must print.

``mmdrfuse data list`` shows what is found; ``mmdrfuse data download NAME`` fetches the public archive named in the
registry with :func:`mmdrfuse.download.fetch` (progress bar; sha256 checked when one is known, a mismatch refused;
an interrupted download resumes where the server allows it), unpacks it into a temporary folder and only then moves
the data set's folders into place; the address and the archive's sha256 are recorded in
``<data root>/mmdrfuse-downloads.json``. ``mmdrfuse data demo`` writes the built-in synthetic demo set
(:mod:`mmdrfuse.demo`).

Medical pairs put the MRI in the IR slot and PET/SPECT in the visible slot (the order that reproduces Table 5).

Modules: :mod:`~mmdrfuse.data.registry` (the data sets and :func:`get`), :mod:`~mmdrfuse.data.lookup` (finding them
under the data root), :mod:`~mmdrfuse.data.downloads` (fetching and unpacking their archives) and
:mod:`~mmdrfuse.data.cli` (``mmdrfuse data``); the names below are re-exported here.
"""
from __future__ import annotations

from mmdrfuse.data.downloads import DOWNLOADS_DIR, RECORD_FILE, download, download_record
from mmdrfuse.data.lookup import _IMAGE_EXTENSIONS, Located, available, find, locate  # noqa: F401
from mmdrfuse.data.registry import PAPER_DATASETS, REGISTRY, DatasetSpec, Source, get

__all__ = ["REGISTRY", "PAPER_DATASETS", "DatasetSpec", "Source", "get", "Located", "find", "locate", "available",
           "download", "download_record", "DOWNLOADS_DIR", "RECORD_FILE"]
