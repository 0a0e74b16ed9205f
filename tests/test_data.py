"""Data registry: resolution order, layouts, the flagged short data set, download from a local HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdrfuse import cli, data
from mmdrfuse.errors import MMDRFuseError


def _touch_pairs(root: Path, ir_rel: str, vis_rel: str, n: int, ext: str = ".png") -> None:
    for rel in (ir_rel, vis_rel):
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"{i:05d}{ext}").write_bytes(b"")  # pair counting looks at names only


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No MMDRFUSE_DATA; the user cache points into tmp."""
    monkeypatch.delenv("MMDRFUSE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


# ---------------------------------------------------------------------------------------------- resolution
def test_resolution_order_explicit_env_cache(no_env, monkeypatch):
    tmp = no_env
    explicit, env, cache = tmp / "explicit", tmp / "env", tmp / "xdg" / "mmdrfuse" / "data"
    for root, n in ((explicit, 3), (env, 5), (cache, 7)):
        _touch_pairs(root, "MRI_PET/MRI", "MRI_PET/PET", n)
    assert data.locate("MRI-PET").n_pairs == 7  # only the cache
    monkeypatch.setenv("MMDRFUSE_DATA", str(env))
    assert data.locate("MRI-PET").n_pairs == 5  # env beats the cache
    assert data.locate("MRI-PET", explicit).n_pairs == 3  # --data-root beats the env
    assert data.locate("MRI-PET", explicit).root == explicit


def test_missing_dataset_says_how_to_get_it(no_env):
    with pytest.raises(MMDRFuseError, match=r"MSRS not found .*mmdrfuse data download MSRS"):
        data.locate("MSRS", no_env / "empty")
    assert data.find("MSRS", no_env / "empty") is None


def test_names_aliases_and_did_you_mean():
    assert data.get("mri_pet").name == "MRI-PET"
    assert data.get("MRI_SPECT").name == "MRI-SPECT"
    with pytest.raises(MMDRFuseError, match="did you mean 'RoadScene'"):
        data.get("RoadScen")


def test_image_extensions_agree_with_io():
    from mmdrfuse import images

    assert data._IMAGE_EXTENSIONS == images.IMAGE_EXTENSIONS


def test_paper_counts_and_layouts():
    counts = {n: data.get(n).paper_pairs for n in data.PAPER_DATASETS}
    assert counts == {"MSRS": 361, "LLVIP": 250, "RoadScene": 50, "MRI-SPECT": 73, "MRI-PET": 42}
    for n in data.PAPER_DATASETS:
        spec = data.get(n)
        if spec.source.url:
            assert spec.source.url.startswith("https://github.com/")
            assert set(spec.source.members.values()) <= {p for lay in spec.layouts for p in lay}


# --------------------------------------------------------------------------------------------------- flags
def test_short_dataset_is_used_and_flagged(no_env):
    root = no_env / "d"
    _touch_pairs(root, "LLVIP/test_samples/ir", "LLVIP/test_samples/vi", 3, ".jpg")
    _touch_pairs(root, "MSRS/test/ir", "MSRS/test/vi", 361)
    llvip = data.locate("LLVIP", root)
    assert llvip.n_pairs == 3 and llvip.short
    assert "3 of the paper's 250" in llvip.flag
    msrs = data.locate("MSRS", root)
    assert not msrs.short and msrs.flag is None
    assert [f.name for f in data.available(root)] == ["MSRS", "LLVIP"]


def test_full_layout_preferred_over_samples(no_env):
    root = no_env / "d"
    _touch_pairs(root, "LLVIP/test_samples/ir", "LLVIP/test_samples/vi", 3, ".jpg")
    _touch_pairs(root, "LLVIP/infrared/test", "LLVIP/visible/test", 250, ".jpg")
    f = data.locate("LLVIP", root)
    assert f.n_pairs == 250 and f.flag is None and f.ir_dir == root / "LLVIP/infrared/test"


def test_shared_llvip_is_flagged(shared_data):
    f = data.locate("LLVIP", shared_data)  # the 15 public samples + the 49 extra test pairs (SOURCES.md)
    assert f.n_pairs == 64 and f.short and "64 of the paper's 250" in f.flag
    assert f.ir_dir == shared_data / "LLVIP/test_samples/ir"
    assert f.more == ((shared_data / "LLVIP/test_extra/ir", shared_data / "LLVIP/test_extra/vi"),)
    for name, n in (("MSRS", 361), ("RoadScene", 50), ("MRI-SPECT", 73), ("MRI-PET", 42)):
        g = data.locate(name, shared_data)
        assert g.n_pairs == n and g.flag is None


def test_supplements_join_a_short_layout_only(no_env):
    """LLVIP's 49 extra test pairs join its samples (64 pairs, flagged); a stem in both counts once and the samples'
    file is used; with the full test split (250 pairs) they are not added."""
    from benchmarks.cache import FusedCache
    root = no_env / "d"
    _touch_pairs(root, "LLVIP/test_samples/ir", "LLVIP/test_samples/vi", 3, ".jpg")  # 00000-00002
    for rel in ("LLVIP/test_extra/ir", "LLVIP/test_extra/vi"):
        (root / rel).mkdir(parents=True)
        for stem in ("00002", "1", "2"):  # 00002 is also a sample
            (root / rel / f"{stem}.jpg").write_bytes(b"")
    f = data.locate("LLVIP", root)
    assert f.n_pairs == 5 and f.more == ((root / "LLVIP/test_extra/ir", root / "LLVIP/test_extra/vi"),)
    assert "5 of the paper's 250" in f.flag and "LLVIP/test_samples + LLVIP/test_extra" in f.flag
    pairs = FusedCache.select(f)
    assert [p.stem for p in pairs] == ["00000", "00001", "00002", "1", "2"]
    assert pairs[2].paths[0] == root / "LLVIP/test_samples/ir/00002.jpg"
    assert pairs[3].paths == (root / "LLVIP/test_extra/ir/1.jpg", root / "LLVIP/test_extra/vi/1.jpg")
    _touch_pairs(root, "LLVIP/infrared/test", "LLVIP/visible/test", 250, ".jpg")
    full = data.locate("LLVIP", root)
    assert full.n_pairs == 250 and full.more == () and full.flag is None
    _touch_pairs(root, "MSRS/test/ir", "MSRS/test/vi", 2)
    assert data.locate("MSRS", root).more == ()  # no supplements registered


def test_cli_list(no_env, capsys):
    root = no_env / "d"
    _touch_pairs(root, "LLVIP/test_samples/ir", "LLVIP/test_samples/vi", 2, ".jpg")
    assert cli.main(["data", "--data-root", str(root), "list"]) == 0
    out = capsys.readouterr().out
    assert "LLVIP" in out and "FLAGGED" in out and "missing" in out


# ------------------------------------------------------------------------------------------------ download
def _zip_bytes(top: str, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(f"{top}/{name}", content)
    return buf.getvalue()


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Server:
    """A local HTTP server on 127.0.0.1 serving fixed bytes; ``truncate`` announces more bytes than it sends."""

    def __init__(self, payload: bytes, truncate: bool = False):
        outer = self
        self.payload, self.truncate, self.hits = payload, truncate, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                body = outer.payload
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body) + (1000 if outer.truncate else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.zip"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def archive():
    files = {f"test_img/MRI_PET/{mod}/{i}.png": _png(10 * i + (mod == "PET")) for mod in ("MRI", "PET")
             for i in range(3)}
    files["README.md"] = b"not data"
    return _zip_bytes("MMIF-CDDFuse-fd8da1f", files)


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_verifies_and_unpacks(no_env, archive):
    root = no_env / "dl"
    with _Server(archive) as srv:
        [f] = data.download("MRI-PET", root, url=srv.url, sha256=hashlib.sha256(archive).hexdigest(),
                            progress=False)
    assert f.n_pairs == 3 and f.ir_dir == root / "MRI_PET" / "MRI"
    assert np.asarray(Image.open(root / "MRI_PET" / "PET" / "2.png"))[0, 0] == 21
    assert _leftovers(root) == ["MRI_PET", data.RECORD_FILE]  # no archive, no temp folder left
    assert data.download_record("MRI-PET", root)["sha256"] == hashlib.sha256(archive).hexdigest()
    # a second call finds it and does not download
    assert data.download("MRI-PET", root, url="http://127.0.0.1:9/unreachable", progress=False)[0].n_pairs == 3


def test_datasets_sharing_an_archive_download_it_once(no_env, monkeypatch):
    files = {f"test_img/{ds}/{mod}/1.png": _png(5) for ds, mods in (("MRI_PET", ("MRI", "PET")),
                                                                 ("MRI_SPECT", ("MRI", "SPECT"))) for mod in mods}
    payload = _zip_bytes("MMIF-CDDFuse-fd8da1f", files)
    root = no_env / "dl"
    with _Server(payload) as srv:
        for name in ("MRI-PET", "MRI-SPECT"):  # point both registry entries at the local server
            spec = data.REGISTRY[name]
            monkeypatch.setitem(data.REGISTRY, name, type(spec)(**{**spec.__dict__, "source": type(spec.source)(
                srv.url, None, spec.source.members, spec.source.provenance)}))
        found = data.download(["MRI-PET", "MRI-SPECT"], root, progress=False)
        assert srv.hits == 1
    assert [(f.name, f.n_pairs) for f in found] == [("MRI-PET", 1), ("MRI-SPECT", 1)]
    assert _leftovers(root) == ["MRI_PET", "MRI_SPECT", data.RECORD_FILE]


def test_download_extra_leaves_out_excluded_files(no_env, monkeypatch):
    """LLVIP's extra test pairs (an archive of 50 renamed pairs): no. 29, a duplicate of sample 190001, is left out;
    the samples already present are not fetched again."""
    files = {f"test/LLVIP/{mod}/{stem}.jpg": _png(int(stem)) for mod in ("ir", "vi") for stem in ("1", "2", "29")}
    payload = _zip_bytes("LENFsuion-13cfbd6", files)
    root = no_env / "dl"
    _touch_pairs(root, "LLVIP/test_samples/ir", "LLVIP/test_samples/vi", 3, ".jpg")
    spec = data.REGISTRY["LLVIP"]
    [extra] = spec.extras
    assert extra.exclude == ("test/LLVIP/ir/29.jpg", "test/LLVIP/vi/29.jpg")
    with _Server(payload) as srv:
        monkeypatch.setitem(data.REGISTRY, "LLVIP", type(spec)(**{**spec.__dict__, "extras": (type(extra)(
            srv.url, None, extra.members, extra.provenance, extra.exclude),)}))
        [f] = data.download("LLVIP", root, progress=False)
        assert srv.hits == 1
    assert sorted(p.name for p in (root / "LLVIP/test_extra/vi").iterdir()) == ["1.jpg", "2.jpg"]
    assert f.n_pairs == 5 and "5 of the paper's 250" in f.flag
    # beside the full test split the extra pairs are not used, so not fetched (nothing is asked of the server)
    full = no_env / "full"
    _touch_pairs(full, "LLVIP/infrared/test", "LLVIP/visible/test", 250, ".jpg")
    with _Server(payload) as srv:
        monkeypatch.setitem(data.REGISTRY, "LLVIP", type(spec)(**{**spec.__dict__, "extras": (type(extra)(
            srv.url, None, extra.members, extra.provenance, extra.exclude),)}))
        [f] = data.download("LLVIP", full, progress=False)
        assert srv.hits == 0
    assert f.n_pairs == 250 and not (full / "LLVIP/test_extra").exists()


def test_download_checksum_mismatch_refused(no_env, archive):
    root = no_env / "dl"
    with _Server(archive) as srv:
        with pytest.raises(MMDRFuseError, match="does not match"):
            data.download("MRI-PET", root, url=srv.url, sha256="0" * 64, progress=False)
    assert _leftovers(root) == []
    assert data.find("MRI-PET", root) is None


def test_download_truncated_keeps_a_partial_file_and_resumes(no_env, archive):
    root = no_env / "dl"
    with _Server(archive, truncate=True) as srv:
        with pytest.raises(MMDRFuseError, match="rerun to resume"):
            data.download("MRI-PET", root, url=srv.url, progress=False)
        assert _leftovers(root) == [data.DOWNLOADS_DIR] and data.find("MRI-PET", root) is None
        assert [p.suffix for p in (root / data.DOWNLOADS_DIR).iterdir()] == [".part"]
        srv.truncate = False  # (this server ignores Range: the partial file is restarted; see test_download.py)
        assert data.download("MRI-PET", root, url=srv.url, progress=False)[0].n_pairs == 3
    assert _leftovers(root) == ["MRI_PET", data.RECORD_FILE]


def test_download_archive_without_expected_folder(no_env):
    root = no_env / "dl"
    payload = _zip_bytes("repo-abc", {"other/file.txt": b"x"})
    with _Server(payload) as srv:
        with pytest.raises(MMDRFuseError, match="not in the archive"):
            data.download("MRI-PET", root, url=srv.url, progress=False)
    assert _leftovers(root) == []


def test_download_refuses_unsafe_archive(no_env):
    root = no_env / "dl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    with _Server(buf.getvalue()) as srv:
        with pytest.raises(MMDRFuseError, match="unsafe"):
            data.download("MRI-PET", root, url=srv.url, progress=False)
    assert _leftovers(root) == [] and not (no_env / "evil.txt").exists()


def test_cli_download_mismatch_exit_code(no_env, archive, capsys):
    root = no_env / "dl"
    with _Server(archive) as srv:
        code = cli.main(["data", "--data-root", str(root), "download", "MRI-PET", "--url", srv.url,
                         "--sha256", "f" * 64, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "does not match" in err[0]
