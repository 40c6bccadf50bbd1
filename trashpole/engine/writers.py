"""
The text files of a run folder that others read with their own tools: ``metrics.json`` (one
strict JSON object per line) and ``log.txt`` (plain text, without the terminal's colour codes).
"""

import logging
import os
import re
import sys
from collections import defaultdict
from typing import Dict, Iterable

from detectron2.utils.events import EventWriter, get_event_storage
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from trashpole.jsonio import dumps

# ANSI escape sequences (colours, cursor moves): ESC [ parameters final-byte
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Loggers that write into log.txt during a run: detectron2's, fvcore's and ours.
RUN_LOGGERS = ("detectron2", "fvcore", "trashpole")


class StrictJSONWriter(EventWriter):
    """
    ``metrics.json`` as detectron2's ``JSONWriter`` writes it (one JSON object per iteration and
    line, appended; smoothed scalars by the median of ``window_size`` values), but strict JSON: a
    scalar that is NaN or infinite, e.g. ``bbox/AP`` of an evaluation without predictions, is
    written as ``null`` instead of ``NaN``.

    Args:
        json_file: the file to append to.
        window_size: iterations over which the scalars put with a smoothing hint are smoothed.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        self.file = PathManager.open(json_file, "a")
        self.window_size = window_size
        self.last_written = -1  # the last iteration with a line in the file

    def write(self) -> None:
        storage = get_event_storage()
        by_iter: Dict[int, dict] = defaultdict(dict)
        for key, (value, it) in storage.latest_with_smoothing_hint(self.window_size).items():
            if it > self.last_written:  # written already
                by_iter[it][key] = value
        for it in sorted(by_iter):
            line = dict(by_iter[it], iteration=it)
            self.file.write(dumps(line, sort_keys=True) + "\n")
        if by_iter:
            self.last_written = max(by_iter)
        self.file.flush()
        try:
            os.fsync(self.file.fileno())
        except (AttributeError, OSError):  # not a local file
            pass

    def close(self) -> None:
        self.file.close()


class PlainTextFormatter(logging.Formatter):
    """Wraps a formatter and removes ANSI escape sequences from what it formats."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return ANSI_ESCAPE.sub("", self.inner.format(record))


def plain_log_files(logger_names: Iterable[str] = RUN_LOGGERS) -> int:
    """
    Make the file handlers of these loggers write plain text: detectron2 logs the config dump
    syntax-highlighted for the terminal, and without this the colour codes end up in log.txt.
    The terminal keeps its colours.

    Args:
        logger_names: loggers whose handlers to change.

    Returns:
        how many handlers were changed (a handler already changed is left alone).
    """
    changed = 0
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            stream = getattr(handler, "stream", None)
            if stream is None or stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                continue
            if isinstance(handler.formatter, PlainTextFormatter):
                continue
            handler.setFormatter(PlainTextFormatter(handler.formatter or logging.Formatter()))
            changed += 1
    return changed


def setup_run_logging(output_dir: str, rank: int) -> None:
    """
    Set up the loggers of a run as detectron2's ``default_setup`` will (same arguments, so its
    cached ``setup_logger`` calls return these loggers without new handlers), then make their
    log files plain text. Call it before ``default_setup``, which logs the coloured config.

    Args:
        output_dir: the run folder (``log.txt`` goes there).
        rank: this process's rank.
    """
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    setup_logger(output_dir, distributed_rank=rank)
    setup_logger(output_dir, distributed_rank=rank, name="trashpole")
    plain_log_files()
