"""The one downloader (mmdrfuse.download) and the main command fetching what it needs, end to end against a local
HTTP server on 127.0.0.1 laid out like the real sources (``$MMDRFUSE_MIRROR``): GitHub ``archive/<commit>.zip``
files with the repository's folder inside, raw files at a pinned commit. Nothing here reaches the internet."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmdrfuse import checkpoints, cli, data
from mmdrfuse.download import fetch, part_path, resolve_url
from mmdrfuse.errors import MMDRFuseError

pytestmark = pytest.mark.timeout(120)


class Mirror:
    """Files under ``root`` served on 127.0.0.1 with HTTP Range support. ``truncate_next`` bytes: the next response
    announces the full length but stops after that many bytes; ``ignore_range``: answer 200 with the whole file."""

    def __init__(self, root: Path):
        outer = self
        self.root, self.requests = root, []
        self.truncate_next: int | None = None
        self.ignore_range = False

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                path = outer.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                start = 0
                if rng and not outer.ignore_range:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if outer.truncate_next is not None:
                    chunk, outer.truncate_next = chunk[:outer.truncate_next], None
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def put(self, rel: str, payload: bytes) -> str:
        """Serve ``payload`` at ``rel``; returns the public https address it stands for."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(payload)
        return f"https://{rel}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("MMDRFUSE_OFFLINE", raising=False)
    monkeypatch.delenv("MMDRFUSE_DATA", raising=False)
    monkeypatch.delenv("MMDRFUSE_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with Mirror(tmp_path / "mirror") as m:
        monkeypatch.setenv("MMDRFUSE_MIRROR", m.url)
        yield m


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------------------------------------------- fetch
def test_mirror_rewrites_addresses(monkeypatch):
    monkeypatch.setenv("MMDRFUSE_MIRROR", "http://127.0.0.1:8000/m/")
    assert resolve_url("https://github.com/a/b/archive/abc1234.zip") == \
        "http://127.0.0.1:8000/m/github.com/a/b/archive/abc1234.zip"
    monkeypatch.delenv("MMDRFUSE_MIRROR")
    assert resolve_url("https://github.com/a/b") == "https://github.com/a/b"


def test_fetch_checks_sha256_and_refuses_a_wrong_one(mirror, tmp_path):
    payload = b"weights" * 5000
    url = mirror.put("example.org/w.model", payload)
    got = fetch(url, tmp_path / "dl" / "w.model", _sha(payload), progress=False)
    assert got.path.read_bytes() == payload and got.verified and got.sha256 == _sha(payload) and got.downloaded
    again = fetch(url, tmp_path / "dl" / "w.model", _sha(payload), progress=False)
    assert not again.downloaded and len(mirror.requests) == 1  # present with the right digest: not fetched again
    bad = tmp_path / "dl2" / "w.model"
    with pytest.raises(MMDRFuseError, match="does not match the expected"):
        fetch(url, bad, "0" * 64, progress=False)
    assert not bad.exists() and list(bad.parent.iterdir()) == []  # nothing kept, no partial file
    with pytest.raises(MMDRFuseError, match="HTTP 404"):
        fetch("https://example.org/missing", tmp_path / "dl3" / "x", progress=False)


def test_fetch_without_a_digest_returns_it(mirror, tmp_path):
    url = mirror.put("example.org/a.zip", b"abc")
    got = fetch(url, tmp_path / "a.zip", None, progress=False, quiet=True)
    assert got.sha256 == _sha(b"abc") and not got.verified
    assert got.record() == {"url": f"{mirror.url}/example.org/a.zip", "path": str(tmp_path / "a.zip"),
                            "sha256": _sha(b"abc"), "sha256_verified": False}


def test_interrupted_download_is_kept_and_resumed(mirror, tmp_path):
    payload = bytes(range(256)) * 400
    url = mirror.put("example.org/big.bin", payload)
    dest = tmp_path / "big.bin"
    mirror.truncate_next = 30000
    with pytest.raises(MMDRFuseError, match="rerun to resume"):
        fetch(url, dest, _sha(payload), progress=False, quiet=True)
    part = part_path(resolve_url(url), dest)
    assert not dest.exists() and part.stat().st_size == 30000
    got = fetch(url, dest, _sha(payload), progress=False, quiet=True)
    assert got.path.read_bytes() == payload and not part.exists()
    assert mirror.requests[-1][1] == "bytes=30000-"  # only the rest was asked for


def test_resume_when_the_server_ignores_range_or_the_part_is_complete(mirror, tmp_path):
    payload = b"x" * 10000
    url = mirror.put("example.org/f.bin", payload)
    dest = tmp_path / "f.bin"
    part = part_path(resolve_url(url), dest)
    part.write_bytes(b"garbage!")
    mirror.ignore_range = True  # 200 with the whole file: the partial file is restarted
    assert fetch(url, dest, _sha(payload), progress=False, quiet=True).path.read_bytes() == payload
    dest.unlink()
    mirror.ignore_range = False
    part.write_bytes(payload + b"extra")  # longer than the file: 416, started over
    assert fetch(url, dest, _sha(payload), progress=False, quiet=True).path.read_bytes() == payload


def test_offline_refuses_without_asking_the_server(mirror, tmp_path):
    url = mirror.put("example.org/w.model", b"w")
    with pytest.raises(MMDRFuseError, match="offline: not downloading"):
        fetch(url, tmp_path / "w.model", progress=False, offline=True)
    assert mirror.requests == []


def test_every_address_is_pinned_to_a_commit():
    import baselines

    urls = [s.source.url for s in data.REGISTRY.values()] + [e.url for s in data.REGISTRY.values() for e in s.extras]
    urls += [w.url for w in checkpoints.WEIGHTS.values()]
    urls += [w.url for spec in baselines.REGISTRY.values() for w in (spec.weights or ()) if w.sha256]
    for url in filter(None, urls):
        parts = url.split("/")
        assert not {"main", "master", "HEAD"} & set(parts), url
        assert any(re.fullmatch(r"[0-9a-f]{7,40}(\.zip)?", p) for p in parts), url


# ------------------------------------------------------------------------------------- the CLI's download commands
def test_weights_and_data_take_their_root_before_or_after_the_action(mirror, tmp_path, monkeypatch, capsys):
    student = io.BytesIO()
    torch.save({k: torch.zeros_like(v) for k, v in checkpoints.Student().state_dict().items()}, student)
    payload = student.getvalue()
    mirror.put("raw.githubusercontent.com/yanglinDeng/MMDRFuse/c9e5014/pretrained_models/student.model", payload)
    entry = checkpoints.WEIGHTS["official-student"]
    monkeypatch.setitem(checkpoints.WEIGHTS, "official-student", dataclasses.replace(entry, sha256=_sha(payload)))
    root = tmp_path / "w"
    assert cli.main(["weights", "download", "official-student", "--weights-root", str(root), "--quiet"]) == 0
    assert (root / "official" / "student.model").read_bytes() == payload
    assert cli.main(["weights", "--weights-root", str(root), "list"]) == 0
    assert cli.main(["weights", "list", "--weights-root", str(root)]) == 0
    listed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("official-student ")]
    assert len(listed) == 2 and all(" found " in ln and str(root) in ln for ln in listed)
    assert cli.main(["data", "list", "--data-root", str(tmp_path / "d")]) == 0


# -------------------------------------------------------------------------------------- the main command, end to end
def _png(value: int, colour: bool = False) -> bytes:
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 255, (48, 48, 3) if colour else (48, 48), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _cddfuse_archive() -> bytes:
    """Like github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip: one top folder <repo>-<commit>/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for folder, mods in (("RoadScene", ("ir", "vi")), ("MRI_SPECT", ("MRI", "SPECT")), ("MRI_PET", ("MRI", "PET"))):
            for i, mod in enumerate(mods):
                for stem in ("11", "12"):
                    zf.writestr(f"MMIF-CDDFuse-fd8da1f/test_img/{folder}/{mod}/{stem}.png", _png(int(stem) + i, i == 1))
        zf.writestr("MMIF-CDDFuse-fd8da1f/README.md", b"CDDFuse")
    return buf.getvalue()


def test_main_command_fetches_what_it_needs(mirror, tmp_path, monkeypatch):
    from benchmarks import run as brun

    archive = _cddfuse_archive()
    mirror.put("github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip", archive)
    student = io.BytesIO()
    torch.manual_seed(0)
    torch.save(checkpoints.Student().state_dict(), student)
    mirror.put("raw.githubusercontent.com/yanglinDeng/MMDRFuse/c9e5014/pretrained_models/student.model",
               student.getvalue())
    entry = checkpoints.WEIGHTS["official-student"]
    monkeypatch.setitem(checkpoints.WEIGHTS, "official-student",
                        dataclasses.replace(entry, sha256=_sha(student.getvalue())))
    monkeypatch.chdir(tmp_path)
    code = brun.main(["table5", "--baselines", "none", "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    data_root, out = tmp_path / "xdg" / "mmdrfuse" / "data", tmp_path / "results"  # the defaults
    assert data.find("MRI-PET", data_root).n_pairs == 2 and data.find("RoadScene", data_root).n_pairs == 2
    assert not (data_root / data.DOWNLOADS_DIR).exists()  # the archive is gone once unpacked
    served = [p for p, _ in mirror.requests]
    assert served.count("/github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip") == 1  # one archive, 3 sets
    record = json.loads((data_root / data.RECORD_FILE).read_text())
    assert record["MRI-PET"]["sha256"] == _sha(archive) and record["MRI-PET"]["sha256_verified"] is False
    df = pd.read_csv(out / "table5.csv")
    ours = df[df["source"] == "ours"]
    assert set(ours["dataset"]) == {"MRI-SPECT", "MRI-PET"} and "official" in set(ours["weights"])
    prov = json.loads((out / "table5.provenance.json").read_text())
    assert "demo" not in prov and prov["data"]["MRI-PET"]["download"]["sha256"] == _sha(archive)
    assert {d["sha256"]: d["sha256_verified"] for d in prov["downloads"]} == {_sha(archive): False,
                                                                              _sha(student.getvalue()): True}
    # a second run finds everything and downloads nothing
    n = len(mirror.requests)
    assert brun.main(["table5", "--baselines", "none", "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    assert len(mirror.requests) == n


def test_offline_run_downloads_nothing_and_is_a_demo(mirror, tmp_path, monkeypatch, capsys):
    from benchmarks import run as brun

    mirror.put("github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip", _cddfuse_archive())
    monkeypatch.chdir(tmp_path)
    code = brun.main(["table5", "--baselines", "none", "--offline", "--methods", "MMDRFuse (mmdrfuse-cpu)",
                      "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and mirror.requests == []
    assert "DEMO RUN" in err and "--offline: nothing was downloaded" in err
    out = tmp_path / "results-demo"  # the demo's own folder, not ./results
    assert not (tmp_path / "results").exists()
    prov = json.loads((out / "table5.provenance.json").read_text())
    assert prov["demo"] is True and prov["flags"][0].startswith("DEMO")
    assert "DEMO" in (out / "table5.md").read_text() and "DEMO" in (out / "REPORT.md").read_text()


def test_unreachable_network_is_noticed_once(tmp_path, monkeypatch, capsys):
    """No network (the mirror's port is closed): one warning, nothing more tried, the demo runs."""
    from benchmarks import run as brun

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("MMDRFUSE_OFFLINE", raising=False)
    monkeypatch.delenv("MMDRFUSE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MMDRFUSE_MIRROR", f"http://127.0.0.1:{port}")
    code = brun.main(["table5", "--baselines", "none", "--methods", "MMDRFuse (mmdrfuse-cpu)", "--out",
                      str(tmp_path / "demo-out"), "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and err.count("cannot be reached") == 1 and "and everything after it" in err
    assert json.loads((tmp_path / "demo-out" / "table5.provenance.json").read_text())["demo"] is True


def test_ivt250_download_entry(mirror, tmp_path, capsys):
    """IVT_250 (unverified, no sha256 known): the GitHub archive of AWCXV/FusionBooster @ 35de693 is fetched, only its
    dataset/IVT_250/{ir,vis} folders are kept, the archive's sha256 is recorded as not verified, and both the listing
    and the download say that the data set is unverified."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in (1, 2, 3):
            zf.writestr(f"FusionBooster-35de693/dataset/IVT_250/ir/{i}.png", _png(i))
            zf.writestr(f"FusionBooster-35de693/dataset/IVT_250/vis/{i}.png", _png(10 + i, colour=True))
        zf.writestr("FusionBooster-35de693/dataset/other/ir/1.png", _png(99))
        zf.writestr("FusionBooster-35de693/README.md", b"FusionBooster")
    archive = buf.getvalue()
    mirror.put("github.com/AWCXV/FusionBooster/archive/35de693.zip", archive)
    root = tmp_path / "d"
    spec = data.get("ivt250")
    assert spec.name == "IVT_250" and spec.source.sha256 is None and "no sha256" in spec.unverified
    assert cli.main(["data", "download", "IVT_250", "--data-root", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "IVT_250: 3 pairs" in out and "unverified" in out
    assert sorted(p.name for p in (root / "IVT_250/vis").iterdir()) == ["1.png", "2.png", "3.png"]
    assert sorted(p.name for p in root.iterdir()) == ["IVT_250", data.RECORD_FILE]  # nothing else of the repository
    record = json.loads((root / data.RECORD_FILE).read_text())["IVT_250"]
    assert record["sha256"] == _sha(archive) and record["sha256_verified"] is False
    assert record["url"].endswith("/github.com/AWCXV/FusionBooster/archive/35de693.zip")
    assert cli.main(["data", "list", "--data-root", str(root)]) == 0
    listed = capsys.readouterr().out
    line = next(ln for ln in listed.splitlines() if ln.startswith("IVT_250 "))
    assert "found    3" in line and "FLAGGED" in line and "unverified" in listed
