"""What the library asks of the machine it runs on: versions, cores, the cache folder, native stderr,
progress, messages, error text.

    with quiet_native_stderr(), progress_bar("classifying", total=len(paths)) as bar:
        ...
        bar.advance(len(batch))
    report(f"run: {run}")            # a message for the person running the job
    raise MobilenetsError(f"cannot read {path}: {first_line(e)}")

One home for each of these small helpers, so that no module grows its own
copy under another name. Nothing here imports another mobilenets module, so
any module may import it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path


def first_line(e: BaseException, prefer: str | None = None, limit: int | None = None) -> str:
    """The first non-blank line of an exception's message, for a one-line error.

    Args:
        e: the exception.
        prefer: take the first line containing this text instead, when there
            is one (the TFLite converter puts its `error:` line after a
            location prefix).
        limit: cut the line to this many characters.

    Returns:
        The line, stripped; the exception's type name when its message is empty.
    """
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if prefer is not None:
        lines = [ln for ln in lines if prefer in ln] or lines
    line = lines[0] if lines else type(e).__name__
    return line[:limit] if limit is not None else line


def package_version(*names: str) -> str | None:
    """The installed version of the first of `names` that is installed (None if none is).

    Args:
        names: distribution names, e.g. `"tensorflow-cpu", "tensorflow"`.
    """
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def package_versions(*names: str) -> dict[str, str]:
    """`{name: version}` for each of `names` that is installed, in the order given.

    Args:
        names: distribution names, e.g. `"mobilenets", "keras"`.
    """
    found = {name: package_version(name) for name in names}
    return {name: v for name, v in found.items() if v is not None}


def cache_home() -> Path:
    """Where mobilenets caches data: `$MOBILENETS_CACHE`, else `$XDG_CACHE_HOME/mobilenets`,
    else `~/.cache/mobilenets`.

    The one cache root: extracted archives, converted IMDB-WIKI trees and
    face crops all go below it, so one variable moves them all.
    """
    if os.environ.get("MOBILENETS_CACHE"):
        return Path(os.environ["MOBILENETS_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mobilenets"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), else the machine's count.

    `os.cpu_count()` counts the machine's cores even when a container or
    `taskset` leaves the process fewer.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide C++ log lines (converter, LiteRT) that bypass Python's sys.stderr."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class ProgressBar:
    """What `progress_bar` yields; a hidden bar takes the same calls and draws nothing."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        """Count `n` more items done."""
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, *, description: str | None = None, completed: int | None = None,
               total: int | None = None) -> None:
        """Set the text before the bar, the count done, or the total (those given)."""
        if self._progress is not None:
            given = {"description": description, "completed": completed, "total": total}
            self._progress.update(self._task, **{k: v for k, v in given.items() if v is not None})


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool | None = None,
                 min_total: int = 0, transient: bool = True, elapsed: bool = False):
    """A rich progress bar on stderr: `description`, bar, done/total, time left.

    Args:
        description: the text before the bar.
        total: the number of items (None: not known yet).
        enabled: draw it (None: when stderr is a terminal and the job is big
            enough, see `min_total`).
        min_total: with `enabled=None`, jobs of fewer items draw nothing (a
            job of unknown size draws).
        transient: clear the bar when done.
        elapsed: show the time spent instead of the time left.

    Yields:
        A `ProgressBar`.
    """
    if enabled is None:
        enabled = sys.stderr.isatty() and (total is None or total >= min_total)
    if not enabled:
        yield ProgressBar()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    clock = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), clock,
                  console=Console(stderr=True), transient=transient) as progress:
        yield ProgressBar(progress, progress.add_task(description, total=total))


# --------------------------------------------------------------- messages

_reporter = None


def report(message: str) -> None:
    """Tell the person running the job something: a resumed phase, skipped files, where a run is.

    Library code never prints: results are returned, and messages come here.
    They go to the reporter `set_reporter` installed, else to stderr (stdout
    stays for the results a command prints, so `--json` output can be piped).
    """
    if _reporter is not None:
        _reporter(message)
    else:
        print(message, file=sys.stderr, flush=True)


def set_reporter(reporter=None):
    """Send `report`'s messages to `reporter(message)` (None: back to stderr); returns the old one.

        import mobilenets as mn
        messages = []
        mn.set_reporter(messages.append)   # or logging.getLogger("mobilenets").info
    """
    global _reporter
    old, _reporter = _reporter, reporter
    return old
