"""MODEL.WEIGHTS as a URL on a machine without internet: one line, exit status 2, before any work;
a file already in detectron2's download cache is used without the network."""

import contextlib
import importlib.util
import io
import os
import urllib.request
from urllib.error import URLError

import iopath.common.file_io
import pytest
from conftest import write_tiny_export
from tiny_model import REPO, write_tiny_config

from trashpole.cli import DEBUG_ENV, run_tool
from trashpole.engine.weights import WeightsDownloadError, cached_path, download_url, fetch_weights

ZOO = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
REFERENCE = str(REPO / "configs" / "mask_rcnn_R_50_FPN_reference.yaml")

pytestmark = pytest.mark.usefixtures("clean_catalogs")


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """detectron2's download cache (iopath reads $FVCORE_CACHE) in tmp_path, empty."""
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def no_network(monkeypatch):
    """urllib fails as it does on a machine without a route out, in the reachability check and
    in iopath's download; returns the URLs tried."""
    calls = []

    def fail(url, *args, **kwargs):
        calls.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    monkeypatch.setattr(iopath.common.file_io, "download", fail)
    return calls


def _train_net(argv):
    """(exit status, stderr) of tools/train_net.py run in this process."""
    spec = importlib.util.spec_from_file_location("tool_train_net", REPO / "tools" / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        try:
            status = run_tool(module.cli, argv)
        except SystemExit as e:
            status = e.code
    return status, buffer.getvalue()


def test_reference_recipe_offline_is_one_line(tmp_path, no_network):
    root = write_tiny_export(tmp_path / "export", splits=("train",))
    out = tmp_path / "out"
    argv = ["--config-file", REFERENCE, "--dataset-root", str(root), "OUTPUT_DIR", str(out)]
    status, err = _train_net(argv)
    url = "https://dl.fbaipublicfiles.com/detectron2/" + ZOO
    assert status == 2
    assert err == (
        f"error: cannot download MODEL.WEIGHTS {url} ([Errno -3] Temporary failure in name "
        "resolution); without internet, fetch that file on another machine and pass "
        "MODEL.WEIGHTS /path/model_final_f10217.pkl, or train from scratch with "
        "configs/mask_rcnn_R_50_FPN_scratch.yaml or configs/mask_rcnn_R_18_FPN_cpu_quick.yaml\n"
    )
    assert no_network == [url]
    assert not out.exists()  # stopped before the run folder, the logs or the data


def test_unreachable_url_is_one_line(tmp_path):
    # nothing listens on port 9 of the loopback: a real, immediate connection refusal
    root = write_tiny_export(tmp_path / "export", splits=("train",))
    url = "http://127.0.0.1:9/weights/model_final.pkl"
    argv = ["--config-file", write_tiny_config(tmp_path), "--dataset-root", str(root)]
    status, err = _train_net(argv + ["MODEL.WEIGHTS", url, "OUTPUT_DIR", str(tmp_path / "out")])
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot download MODEL.WEIGHTS {url} (")
    assert "pass MODEL.WEIGHTS /path/model_final.pkl, or train from scratch" in err
    assert not (tmp_path / "out").exists()


def test_cached_url_needs_no_network(empty_cache, no_network):
    cached = empty_cache / "detectron2" / ZOO
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert cached_path("https://dl.fbaipublicfiles.com/detectron2/" + ZOO) == str(cached)
    assert fetch_weights("detectron2://" + ZOO) == str(cached)
    assert no_network == []


def test_download_goes_where_detectron2_reads_it(empty_cache, monkeypatch):
    """A download through fetch_weights lands in the file cached_path names (iopath's naming)."""
    url = "https://example.org/zoo/run-7/model_final.pkl"

    def download(url, folder, filename=None, progress=True):
        path = os.path.join(folder, filename)
        with open(path, "wb") as f:
            f.write(b"weights")
        return path

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: contextlib.nullcontext())
    monkeypatch.setattr(iopath.common.file_io, "download", download)
    path = fetch_weights(url)
    assert path == cached_path(url) == str(empty_cache / "zoo" / "run-7" / "model_final.pkl")
    assert open(path, "rb").read() == b"weights"


def test_download_error_is_a_user_error(no_network):
    with pytest.raises(WeightsDownloadError, match=r"https://example\.org/m\.pkl \(\[Errno -3\]"):
        fetch_weights("https://example.org/m.pkl")
    assert (
        download_url("detectron2://a/b.pkl") == "https://dl.fbaipublicfiles.com/detectron2/a/b.pkl"
    )
    assert download_url("https://example.org/m.pkl") == "https://example.org/m.pkl"
