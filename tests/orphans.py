"""What the tests that kill `alloctrace run` share: once the recorder is
dead its program runs on as an orphan, and `alloctrace recover` refuses a
trace whose program still runs ("still running")."""
import subprocess
import time


def recover(alloctrace, trace, patience=60):
    """`alloctrace recover -q TRACE`, again while the orphaned program is
    still running (for at most `patience` seconds); the last attempt."""
    end = time.time() + patience
    while True:
        r = subprocess.run([alloctrace, "recover", "-q", trace], capture_output=True, text=True,
                           timeout=300)
        if "still running" not in r.stderr or time.time() > end:
            return r
        time.sleep(0.1)
