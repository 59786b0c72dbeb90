"""What a killed process leaves: real temporary files of `mobilenets.artifacts`.

    dead = leftover(run / "checkpoints" / "train.keras")   # its writer was kill -9ed
    with live_writer(run / "checkpoints" / "train.keras") as busy:  # its writer still runs
        ...
    kill_9_when(["export", run], lambda: any(out.glob(".export.staging-*/*")), "export")
"""

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

_WRITE = """
import os, signal, sys
from mobilenets.artifacts import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a file")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()
    os._exit(0)  # still mid-write: never renamed into place
"""


def leftover(path: Path) -> Path:
    """The temporary file a writer of `path` killed mid-write leaves beside it."""
    out = subprocess.run([sys.executable, "-c", _WRITE, str(path), "kill"], capture_output=True, text=True)
    tmp = Path(out.stdout.strip())
    assert tmp.is_file() and tmp.parent == Path(path).parent, out.stderr
    return tmp


@contextlib.contextmanager
def live_writer(path: Path):
    """A process in the middle of writing `path`; yields its temporary file."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITE, str(path), "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.is_file()
        yield tmp
    finally:
        proc.communicate("")


def kill_9_when(argv: list, ready, what: str, timeout: float = 300) -> None:
    """Run `mobilenets *argv` and kill -9 it as soon as `ready()` is true."""
    proc = subprocess.Popen([sys.executable, "-m", "mobilenets", *map(str, argv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, f"{what} ended before the kill"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
