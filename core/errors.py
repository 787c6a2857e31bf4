"""User errors and the wrapper every entry point runs in.

An error the user caused and can fix -- a misspelt key, a missing or corrupt file, a bad
value -- is shown as one short message on stderr, ``error: <what, naming the key or path,
and what to do>``, and the command exits with status 2.  The traceback is shown too only
with ``--debug`` on the command line (removed before the command parses its arguments) or
``NOISE_GANS_DEBUG=1`` in the environment (which ``--debug`` sets, so that the commands a
sweep starts show theirs as well).  Any other exception is a bug and keeps its traceback.

``train.py``, ``python -m analysis`` and ``python -m tools`` all run through
:func:`call_cli` / :func:`run_cli`; each passes the exception types of its own packages that
count as user errors, and ``train.py`` a ``translate`` function for jsonargparse's errors.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import traceback
import zipfile
from typing import Any, Callable, NoReturn, Optional, Sequence

__all__ = [
    "DEBUG_ENV",
    "DEBUG_FLAG",
    "EXIT_USER_ERROR",
    "USER_ERRORS",
    "ArgumentParser",
    "UserError",
    "call_cli",
    "check_checkpoint_file",
    "debug_enabled",
    "error_lines",
    "run_alias",
    "run_cli",
    "user_error_message",
]

EXIT_USER_ERROR = 2
DEBUG_FLAG = "--debug"
DEBUG_ENV = "NOISE_GANS_DEBUG"
#: Lines of a message shown at most; a longer one is cut, with a pointer to --debug.
MAX_LINES = 3


class UserError(Exception):
    """A mistake the user can fix; the message is the whole text shown (``error: <message>``).

    It names the key or path at fault and what to do, in one line (three at most).
    """


#: Exceptions that are the user's to fix wherever they are raised: a file that is missing or
#: cannot be opened (a dataset, checkpoint or weights file), or one that is not a checkpoint.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)

Translate = Callable[[BaseException], Optional[str]]


def debug_enabled() -> bool:
    """True when ``NOISE_GANS_DEBUG`` is set to anything but empty, 0, false or no."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _strip_debug(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--debug``; seeing it turns debugging on (here and in child processes)."""
    if DEBUG_FLAG in argv:
        os.environ[DEBUG_ENV] = "1"
    return [a for a in argv if a != DEBUG_FLAG]


def user_error_message(
    exc: BaseException, user_errors: Sequence[type[BaseException]] = (), translate: Optional[Translate] = None
) -> Optional[str]:
    """The message to show for ``exc`` when it is a user error, else None (a bug: keep the traceback)."""
    if translate is not None:
        message = translate(exc)
        if message is not None:
            return message
    if isinstance(exc, RuntimeError) and "PytorchStreamReader failed" in str(exc):  # torch.load of a broken zip
        return f"not a readable PyTorch checkpoint (truncated or corrupt file): {str(exc).split('. ')[0]}"
    if not isinstance(exc, USER_ERRORS + tuple(user_errors)):
        return None
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:  # raised by open() & co.
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, pickle.UnpicklingError):
        return f"a file that should be a PyTorch checkpoint is not one ({str(exc).splitlines()[0]})"
    return str(exc) or type(exc).__name__


def error_lines(message: str) -> str:
    """``error: <message>`` for stderr, cut to :data:`MAX_LINES` lines (the rest is shown with --debug)."""
    lines = [line.rstrip() for line in message.strip().splitlines() if line.strip()] or ["(no message)"]
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [f"  ... ({len(lines) - MAX_LINES + 1} more lines with {DEBUG_FLAG})"]
    return "error: " + "\n".join(lines) + "\n"


def call_cli(
    main: Callable[[Optional[list[str]]], Any],
    argv: Optional[Sequence[str]] = None,
    *,
    user_errors: Sequence[type[BaseException]] = (),
    translate: Optional[Translate] = None,
) -> int:
    """Run ``main(argv)`` and return its exit status; a user error becomes ``error: ...`` and status 2.

    ``--debug`` is removed from ``argv`` (from ``sys.argv`` in place when ``argv`` is None, so
    that ``main`` reads it without) and turns debugging on: the traceback is printed above the
    message.  ``main`` returns an int status, or anything else for 0.  Exceptions that are not
    user errors (see :func:`user_error_message`) propagate with their traceback.
    """
    if argv is None:
        sys.argv[1:] = _strip_debug(sys.argv[1:])
    else:
        argv = _strip_debug(argv)
    try:
        result = main(argv)
    except Exception as exc:  # not SystemExit (argparse's --help, an explicit exit) nor KeyboardInterrupt
        message = user_error_message(exc, user_errors, translate)
        if message is None:
            raise
        if debug_enabled():
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.write(error_lines(message))
        return EXIT_USER_ERROR
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def run_cli(main: Callable[[Optional[list[str]]], Any], argv: Optional[Sequence[str]] = None, **kwargs: Any) -> NoReturn:
    """:func:`call_cli` (same arguments), then exit with its status: an entry point's ``__main__``."""
    sys.exit(call_cli(main, argv, **kwargs))


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (a :class:`UserError`), not the usage and a line.

    Sub-parsers made with ``add_subparsers().add_parser`` are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (`{self.prog} --help` lists the options)")


def check_checkpoint_file(path: str, key: str, howto: Optional[str] = None) -> str:
    """``path`` when it is a file ``torch.load`` can open (a zip archive or a pickle), else a UserError.

    Args:
        path: the checkpoint file.
        key: the option or config key it came from, named in the message (``--ckpt``).
        howto: the command that writes such a checkpoint, named when the file is missing.
    """
    if not os.path.exists(path):
        hint = f"; write one with `{howto}`" if howto else ""
        raise UserError(f"{key} {path}: no such file (working directory {os.getcwd()}){hint}")
    if os.path.isdir(path):
        raise UserError(f"{key} {path}: a directory, not a checkpoint file")
    with open(path, "rb") as handle:
        magic = handle.read(1)
    if not (zipfile.is_zipfile(path) or magic == b"\x80"):  # torch.save's zip format, or a legacy pickle
        raise UserError(f"{key} {path}: not a PyTorch checkpoint (truncated, corrupt or another kind of file)")
    return path


def run_alias(old: str, module: str, *args: str) -> None:
    """A deprecated command: one note on stderr, then ``python -m MODULE ARGS <the same arguments>``.

    The new command runs in this process, as if started with ``python -m`` (``sys.argv`` and
    ``__main__`` are set), so its output and exit status are the alias's.
    """
    import runpy

    new = " ".join(["python -m", module, *args])
    sys.stderr.write(f"note: '{old}' is now '{new}'\n")
    sys.argv[1:1] = list(args)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
