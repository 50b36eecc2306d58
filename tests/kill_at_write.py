"""`python kill_at_write.py WHERE ARGS...`: `keras-resnext ARGS`, SIGKILLed inside one of its file writes.

WHERE is N, the Nth write, or NAME or NAME#K, the first or Kth write of a file whose name ends with
NAME. Every file the package writes goes through a temporary file and `os.replace`. At that replace
this process truncates the temporary file to half, says on stderr which file it was writing
(`killed inside PATH`) and kills itself: what a kill in the middle of that save leaves on disk.
Used by test_resume.py to kill runs and searches inside every kind of save they make.
`KILL_AT_WRITE_SIGNAL=SIGTERM` sends SIGTERM instead, as `kill` and schedulers stop a process.
"""

import os
import signal
import sys

WHERE = sys.argv[1]
NAME, _, NTH = ("", "", WHERE) if WHERE.isdigit() else WHERE.partition("#")
KILL_AT = int(NTH or 1)
SIGNAL = signal.Signals[os.environ.get("KILL_AT_WRITE_SIGNAL", "SIGKILL")]
_real_replace = os.replace
_writes = 0


def _replace_then_die(src, dst, *args, **kwargs):
    global _writes
    if os.fspath(dst).endswith(NAME):
        _writes += 1
        if _writes == KILL_AT and os.path.isfile(src):
            os.truncate(src, os.path.getsize(src) // 2)
            print(f"killed inside {os.fspath(dst)}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), SIGNAL)
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _replace_then_die

from keras_resnext.cli import main  # noqa: E402 - after the patch, as a user's process would run

sys.exit(main(sys.argv[2:]))
