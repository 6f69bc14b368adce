"""Logging for recursa: library modules log, programs decide where the records go.

Every module logs through `logging.getLogger(__name__)`, under the `recursa`
logger, which has a `NullHandler` (see `recursa.agent`): used as a library,
recursa prints nothing unless the program configures logging. The CLI and the
TUI call `configure_logging()`, which writes a rotating file under the data
directory (`log_path()`), so a failure can be read after the screen is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

__all__ = ["LOGGER", "CrashRecord", "configure_logging", "log_path", "record_crash", "stop_logging"]

LOGGER = "recursa"
LOG_FILE = "recursa.log"
MAX_BYTES = 1_000_000  # then the file rotates: recursa.log.1, .2, .3
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


def log_path() -> Path:
    """The log file: `logs/recursa.log` in the data directory (under RECURSA_HOME if set)."""
    from recursa.memory import locations

    return locations.data_dir() / "logs" / LOG_FILE


class _LogFile(RotatingFileHandler):
    """A rotating log file whose folder is made with its first record, not before.

    A command that logs nothing (`recursa db path`) leaves no trace on disk. A
    file that cannot be written (a read-only data folder, `logs` being a file, a
    full disk) costs one line on stderr, once; the handler then drops its records.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True
        )
        self.problem: str | None = None  # why the file could not be written, once it failed

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        if self.problem is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # logging's own report is a multi-line "--- Logging error ---" block with a
        # traceback, on every record: one line, once, says the same to the user.
        if self.problem is not None:
            return
        err = sys.exc_info()[1]
        if isinstance(err, FileExistsError | NotADirectoryError) and err.filename:
            reason = f"{err.filename} is not a folder"
        elif isinstance(err, OSError):
            reason = err.strerror or str(err)
        else:
            reason = str(err) or repr(err)
        self.problem = f"{self.baseFilename}: {reason}"
        with contextlib.suppress(OSError, ValueError):
            if self.stream is not None:
                self.stream.close()
            sys.stderr.write(
                f"Warning: cannot write the log file {self.baseFilename} ({reason}); "
                "this run logs nothing (set RECURSA_HOME to a writable folder).\n"
            )
            sys.stderr.flush()


def configure_logging(path: Path | None = None, *, level: int = logging.INFO) -> Path:
    """Write recursa's records of `level` and above to a rotating file; returns its path.

    `path` defaults to `log_path()`. Calling it again replaces the file this
    function set up before (a process that runs several commands, or a test
    suite, follows the data directory of the latest call). Other handlers, and
    the root logger, are left alone.
    """
    target = path if path is not None else log_path()
    logger = logging.getLogger(LOGGER)
    stop_logging()
    handler = _LogFile(target)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return target


def stop_logging() -> None:
    """Remove and close the file handler `configure_logging` installed, if any."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _LogFile):
            logger.removeHandler(handler)
            handler.close()


@dataclass(frozen=True)
class CrashRecord:
    """Where `record_crash` wrote a traceback (`path`), or why it could not (`problem`)."""

    path: Path | None
    problem: str | None = None


def record_crash(exc: BaseException, command: str, path: Path | None = None) -> CrashRecord:
    """Append an unexpected exception's traceback to the log file; say where it went.

    Written directly, not through `logging`: a program's last words must reach
    the file even when logging was never configured, and a failure to write
    them must be reported to the caller, not printed as a logging error.
    """
    target = path if path is not None else log_path()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = "".join(traceback.format_exception(exc))
    entry = f"{stamp} CRITICAL {LOGGER} [pid {os.getpid()}] {command} failed unexpectedly:\n{text}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(entry)
    except OSError as err:
        return CrashRecord(None, f"{target}: {err.strerror or err}")
    return CrashRecord(target)
