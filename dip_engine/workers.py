"""Worker processes that do not outlive their parent.

``dip-cds group`` and ``dip-cds settle`` group in forked worker processes. When the parent dies
without shutting its pool down (SIGKILL, the OOM killer, a closed terminal) the workers would be
re-parented and keep running — holding memory and CPU and writing checkpoint files. Each worker
therefore watches its parent and exits as soon as the parent is gone.
"""

from __future__ import annotations

import os
import threading
import time

POLL_SECONDS = 0.5


def exit_with_parent(poll_seconds: float = POLL_SECONDS) -> None:
    """Start a daemon thread that ends this process when its parent process has died.

    Polling ``getppid()`` (re-parenting changes it) works on every POSIX system and, unlike
    ``PR_SET_PDEATHSIG``, does not fire when merely the thread that forked the worker ends.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)  # no cleanup: the parent owns the output and the checkpoints stay valid

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
