"""The suite's one downloader: checksummed, resumable downloads with a progress bar (pooch + HTTP Range).

:func:`fetch` is used by ``mmdrfuse data download`` (:mod:`mmdrfuse.data`), ``mmdrfuse weights download``
(:mod:`mmdrfuse.checkpoints`) and by ``python -m benchmarks.run``, which fetches what a run needs.

- The file is checked with pooch against its sha256 when one is known: a mismatch is refused and nothing is kept.
  Without a known digest the file's sha256 is returned (:class:`Fetched`) for the caller to record in provenance.
- Resume: the bytes go to ``<dest>.<url hash>.part``; a download that stops midway leaves that file and the next call
  asks the server for the rest (HTTP ``Range``). A server that ignores ``Range`` (GitHub's generated ``archive/``
  zips are streamed without a length) sends everything again and the partial file is restarted.
- ``offline=True`` refuses any download with one line naming the address and where the file should go.
  ``$MMDRFUSE_OFFLINE=1`` makes :func:`offline_requested` true (``benchmarks.run`` then fetches nothing; the tests set
  it); explicit download commands still download.
- ``$MMDRFUSE_MIRROR=http://host:port/prefix`` rewrites ``https://HOST/PATH`` to ``<mirror>/HOST/PATH``: a local
  mirror laid out like the sources (the tests serve one on 127.0.0.1).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mmdrfuse.errors import MMDRFuseError

OFFLINE_ENV = "MMDRFUSE_OFFLINE"
MIRROR_ENV = "MMDRFUSE_MIRROR"
CHUNK = 1 << 16


class NetworkError(MMDRFuseError):
    """The address could not be reached at all (no network, name resolution, refused, timeout)."""


@dataclass(frozen=True)
class Fetched:
    """A file on disk, where it came from and its sha256 (``verified``: checked against a known digest)."""

    path: Path
    url: str
    sha256: str
    verified: bool
    downloaded: bool  # False when the file was already there

    def record(self) -> dict:
        """What provenance files keep of a download."""
        return {"url": self.url, "path": str(self.path), "sha256": self.sha256, "sha256_verified": self.verified}


def offline_requested(explicit: bool | None = None) -> bool:
    """``explicit`` when given, else whether ``$MMDRFUSE_OFFLINE`` is set to a true value."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def resolve_url(url: str) -> str:
    """``url`` rewritten onto ``$MMDRFUSE_MIRROR`` when it is set (``https://HOST/PATH`` -> ``MIRROR/HOST/PATH``)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    _, sep, rest = url.partition("://")
    if not mirror or not sep:
        return url
    return f"{mirror.rstrip('/')}/{rest}"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def part_path(url: str, dest: str | os.PathLike) -> Path:
    """The partial file of ``url`` downloading to ``dest`` (keyed by the address, so a changed address restarts)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{hashlib.sha1(url.encode()).hexdigest()[:10]}.part")


class _Incomplete(MMDRFuseError):
    pass


class _Resumable:
    """A pooch downloader that appends to a stable partial file with HTTP Range and hands the complete file over."""

    def __init__(self, part: Path, progress: bool, timeout: float, desc: str):
        self.part, self.progress, self.timeout, self.desc = part, progress, timeout, desc
        self.digest: str | None = None
        self.resumed_from = 0

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False):  # noqa: ARG002 - pooch API
        import requests
        from tqdm import tqdm

        have = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"Accept-Encoding": "identity"}  # the bytes as published (counted, hashed, resumable)
        if have:
            headers["Range"] = f"bytes={have}-"
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if have and r.status_code == 416:  # the partial file is not a prefix the server knows: start over
                self.part.unlink()
                return self(url, output_file, pooch)
            r.raise_for_status()
            if have and r.status_code != 206:  # Range ignored: the whole file comes again
                have = 0
            self.resumed_from = have
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            got = have
            with open(self.part, "ab" if have else "wb") as f, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=self.desc, file=sys.stderr,
                         disable=not self.progress, leave=False) as bar:
                try:
                    for chunk in r.raw.stream(CHUNK, decode_content=False):
                        f.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                except Exception as exc:  # noqa: BLE001 - connection dropped midway: keep what arrived
                    f.flush()
                    raise _Incomplete(f"{url}: download interrupted after {got} bytes ({exc.__class__.__name__}); "
                                      f"the partial file {self.part} is kept: rerun to resume") from None
        if total is not None and got < total:
            raise _Incomplete(f"{url}: download incomplete ({got} of {total} bytes); the partial file {self.part} "
                              "is kept: rerun to resume")
        self.digest = sha256_file(self.part)
        os.replace(self.part, output_file)


@contextlib.contextmanager
def _pooch_quiet():
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, *, progress: bool = True,
          timeout: float = 60.0, offline: bool = False, quiet: bool = False) -> Fetched:
    """``url`` at ``dest`` (downloaded unless already there with the right digest); see the module doc.

    Errors are one-line :class:`MMDRFuseError` s (:class:`NetworkError` when the address cannot be reached).
    """
    import pooch
    import requests

    dest = Path(dest)
    real = resolve_url(url)
    want = sha256.lower() if sha256 else None
    if dest.is_file():
        have = sha256_file(dest)
        if want is None or have == want:
            return Fetched(dest, real, have, want is not None, False)
    if offline:
        raise MMDRFuseError(f"offline: not downloading {real} (wanted at {dest}); allow downloads (drop --offline / "
                            f"${OFFLINE_ENV}) or place the file there by hand")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dl = _Resumable(part_path(real, dest), progress, timeout, dest.name)
    if not quiet:
        resume = f" (resuming a partial download of {dl.part.stat().st_size} bytes)" if dl.part.is_file() else ""
        print(f"downloading {real} -> {dest}{resume}", file=sys.stderr)
    try:
        with _pooch_quiet():
            pooch.retrieve(real, f"sha256:{want}" if want else None, fname=dest.name, path=dest.parent,
                           downloader=dl, progressbar=False)
    except ValueError:  # pooch: the digest does not match (it has deleted the file)
        raise MMDRFuseError(f"{real}: sha256 {dl.digest} does not match the expected {want}; refusing it, "
                            "nothing was kept") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NetworkError(f"{real}: cannot be reached ({exc.__class__.__name__}); check the network, or place "
                           f"the file at {dest} by hand") from None
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise MMDRFuseError(f"{real}: download failed (HTTP {code}); check the address, or place the file at "
                            f"{dest} by hand") from None
    except requests.RequestException as exc:
        raise MMDRFuseError(f"{real}: download failed ({exc.__class__.__name__}: {exc}); place the file at {dest} "
                            "by hand") from None
    except OSError as exc:
        raise MMDRFuseError(f"{real}: download failed ({exc.__class__.__name__}: {exc}); place the file at {dest} "
                            "by hand") from None
    digest = dl.digest or sha256_file(dest)
    if not want and not quiet:
        print(f"note: no published sha256 for {real}; the downloaded file has sha256 {digest} (recorded)",
              file=sys.stderr)
    return Fetched(dest, real, digest, want is not None, True)

