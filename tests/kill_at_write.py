"""`python kill_at_write.py N ARGS...`: `keras-resnext ARGS`, SIGKILLed during its Nth file write.

Every file the package writes goes through a temporary file and `os.replace`. At
the Nth replace this process truncates the temporary file to half and kills
itself: what a kill in the middle of that save leaves on disk. Used by
test_resume.py to kill a run inside every kind of save it makes.
"""

import os
import signal
import sys

KILL_AT = int(sys.argv[1])
_real_replace = os.replace
_writes = 0


def _replace_then_die(src, dst, *args, **kwargs):
    global _writes
    _writes += 1
    if _writes == KILL_AT and os.path.isfile(src):
        os.truncate(src, os.path.getsize(src) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _replace_then_die

from keras_resnext.cli import main  # noqa: E402 - after the patch, as a user's process would run

sys.exit(main(sys.argv[2:]))
