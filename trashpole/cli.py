"""
What every tool in ``tools/`` does with an exception: a user mistake
(:class:`trashpole.errors.UserError`) becomes one line on stderr, ``error: <message>``, and exit
status 2; anything else is a bug and keeps its traceback. ``--debug`` on the command line, or
``TRASHPOLE_DEBUG=1`` in the environment, shows the traceback of a user mistake too.

    if __name__ == "__main__":
        sys.exit(run_tool(main))

A tool that trains through detectron2's ``launch`` hands it ``partial(run_worker, main)``
(picklable), so that a user mistake met inside a spawned worker is reported the same way; the
worker's exit status 2 then tells :func:`run_tool` that the line was already printed.
"""

import argparse
import os
import sys
from typing import Any, Callable, List, Optional, Sequence

from trashpole.errors import UserError

DEBUG_ENV = "TRASHPOLE_DEBUG"
DEBUG_FLAG = "--debug"
USER_ERROR_STATUS = 2


def add_checkout_to_path(script: str) -> str:
    """
    Put the checkout that holds ``script`` (a file in its ``tools/``) first on ``sys.path``, so
    that the script can import the checkout's ``benchmarks/`` and ``synthetic/``, which setup.py
    leaves out of the installed package. Only the tools that run them call it; calling it twice
    is harmless.

    Args:
        script: the calling tool's ``__file__``.

    Returns:
        the checkout's root folder (the parent of ``tools/``).
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    if root not in sys.path:
        sys.path.insert(0, root)
    return root


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (show the traceback of a user mistake) to a tool's parser; returns it."""
    parser.add_argument(
        DEBUG_FLAG,
        action="store_true",
        help=f"show the full traceback of an error (also: {DEBUG_ENV}=1)",
    )
    return parser


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """
    Whether tracebacks were asked for.

    Args:
        argv: the tool's arguments (default: ``sys.argv[1:]``).

    Returns:
        True when ``--debug`` is among them or ``$TRASHPOLE_DEBUG`` is set to anything but
        "", "0", "false" or "no".
    """
    args = sys.argv[1:] if argv is None else argv
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return DEBUG_FLAG in args or env not in ("", "0", "false", "no")


def error_line(error: BaseException) -> str:
    """``error: <message>`` on one line: the message's lines are joined with "; "."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    text = "; ".join(line for line in lines if line) or type(error).__name__
    return f"error: {text}"


def _report(error: UserError) -> int:
    print(error_line(error), file=sys.stderr, flush=True)
    return USER_ERROR_STATUS


def _is_reported_worker_exit(error: BaseException) -> bool:
    """A spawned worker that exited with status 2 has printed its error line already."""
    try:
        # torch only when a tool failed: the CLI wrapper itself stays import-light
        from torch.multiprocessing import ProcessExitedException
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(error, ProcessExitedException) and error.exit_code == USER_ERROR_STATUS


def run_tool(main: Callable[[List[str]], Any], argv: Optional[Sequence[str]] = None) -> int:
    """
    Run a tool's ``main(argv)`` and turn a user mistake into one line and status 2.

    Args:
        main: the tool's entry point; takes the argument list.
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        the exit status: 0 when ``main`` returned, 2 after a user mistake. Other exceptions
        (bugs) propagate with their traceback, as does ``SystemExit`` (argparse's own errors).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        main(args)
    except UserError as e:
        if debug_requested(args):
            raise
        return _report(e)
    except Exception as e:
        if _is_reported_worker_exit(e) and not debug_requested(args):
            return USER_ERROR_STATUS
        raise
    return 0


def run_worker(main: Callable[..., Any], *args: Any) -> Any:
    """
    Run ``main(*args)`` in a (possibly spawned) worker process: a user mistake prints its line
    and ends the process with status 2 (``SystemExit``), which :func:`run_tool` recognizes.

    Args:
        main: the function detectron2's ``launch`` would run.
        args: its arguments.

    Returns:
        whatever ``main`` returns.
    """
    try:
        return main(*args)
    except UserError as e:
        if debug_requested():
            raise
        raise SystemExit(_report(e)) from None
