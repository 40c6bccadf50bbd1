"""MODEL.WEIGHTS given as a URL: fetched (or found in the download cache) before a run starts."""

import logging
import os
import urllib.request
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlparse

from trashpole.errors import UserError

# the prefixes detectron2's PathManager downloads (detectron2:// is its model zoo on
# dl.fbaipublicfiles.com); anything else with "://" is left to PathManager as it is
REMOTE_PREFIXES = ("detectron2://", "http://", "https://", "ftp://")
# the recipes that need no download
SCRATCH_RECIPES = (
    "configs/mask_rcnn_R_50_FPN_scratch.yaml or configs/mask_rcnn_R_18_FPN_cpu_quick.yaml"
)


class WeightsDownloadError(UserError):
    """MODEL.WEIGHTS is a URL that cannot be fetched (offline, firewalled, wrong address)."""


def is_remote(weights: str) -> bool:
    """Whether ``weights`` is a URL that detectron2 downloads (``detectron2://``, http(s), ftp)."""
    return weights.startswith(REMOTE_PREFIXES)


def download_url(weights: str) -> str:
    """The address actually fetched: ``detectron2://X`` is detectron2's model zoo on
    dl.fbaipublicfiles.com; any other URL is itself."""
    from detectron2.utils.file_io import Detectron2Handler

    if weights.startswith(Detectron2Handler.PREFIX):
        return Detectron2Handler.S3_DETECTRON2_PREFIX + weights[len(Detectron2Handler.PREFIX) :]
    return weights


@contextmanager
def _quiet_download_log() -> Iterator[None]:
    # iopath logs "Failed to download URL" as an error before it raises; the one-line error below
    # says the same, so that line is held back for the duration of the fetch
    download_logger = logging.getLogger("iopath.common.download")
    old = download_logger.disabled
    download_logger.disabled = True
    try:
        yield
    finally:
        download_logger.disabled = old


def cached_path(url: str) -> str:
    """Where detectron2's PathManager keeps the download of ``url``: iopath's cache folder
    (``$FVCORE_CACHE``, by default ``~/.torch/iopath_cache``) + the URL's path, as iopath 0.1.9's
    HTTPURLHandler names it (tests/test_offline.py fails if the two part)."""
    from iopath.common.file_io import get_cache_dir

    folder = os.path.dirname(urlparse(url).path.lstrip("/"))
    return os.path.join(get_cache_dir(), folder, url.split("/")[-1])


def _check_reachable(url: str, timeout_s: float = 30.0) -> None:
    # opened and closed at once (headers only), so that an offline machine fails before iopath
    # starts its progress bar; GET rather than HEAD, which some servers refuse
    with urllib.request.urlopen(url, timeout=timeout_s):
        pass


def fetch_weights(weights: str) -> str:
    """
    Download a remote MODEL.WEIGHTS into detectron2's download cache, or find it there, so that
    a run fails before any work when the file cannot be had.

    Args:
        weights: a URL, e.g. ``detectron2://COCO-InstanceSegmentation/.../model_final_f10217.pkl``.

    Returns:
        the local path of the cached file (detectron2 later resolves the URL to the same file).

    Raises:
        WeightsDownloadError: the download failed; the message names the URL, the reason, and
            the two ways on: a local copy via ``MODEL.WEIGHTS /path/FILE`` or a from-scratch
            recipe.
    """
    from detectron2.utils.file_io import PathManager

    url = download_url(weights)
    try:
        if not os.path.isfile(cached_path(url)):
            _check_reachable(url)
        with _quiet_download_log():
            return PathManager.get_local_path(weights)
    except OSError as e:  # urllib's URLError and HTTPError, socket timeouts, a full disk
        reason = getattr(e, "reason", None) or e
        raise WeightsDownloadError(
            f"cannot download MODEL.WEIGHTS {url} ({reason}); without internet, fetch that file "
            f"on another machine and pass MODEL.WEIGHTS /path/{url.split('/')[-1]}, or train "
            f"from scratch with {SCRATCH_RECIPES}"
        ) from e
