"""A stand-in for `prefect.engine`, run by the fork server in tests/unit/test_forkserver.py."""

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__":
    if os.environ.get("ENGINE_MODE") == "exit-work":
        # What Prefect leaves for the interpreter's exit: a thread that still has lines to
        # write (its log worker) and an atexit handler.
        def late() -> None:
            time.sleep(0.3)
            print("from a thread at exit", flush=True)

        threading.Thread(target=late).start()
        atexit.register(lambda: print("from atexit", flush=True))
    if os.environ.get("ENGINE_MODE") == "wait":
        # Its handler first: once the pid is written, a test may send SIGTERM at once.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(70))
        Path(os.environ["ENGINE_PID_FILE"]).write_text(str(os.getpid()))
        time.sleep(600)
    print(f"run {os.environ['PREFECT__FLOW_RUN_ID']} in {os.getcwd()}")
    print("to stderr", file=sys.stderr)
    sys.exit(int(os.environ.get("ENGINE_EXIT", "0")))
