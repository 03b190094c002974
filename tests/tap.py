"""The checks of the Python test scripts: each prints a line, "ok - WHAT"
or "FAIL - WHAT[: DETAIL]", and failures are counted for the exit status."""
import sys

failures = 0


def check(cond, what, detail=''):
    """Prints the check's line; returns `cond`."""
    global failures
    if cond:
        print(f'ok - {what}', flush=True)
    else:
        failures += 1
        print(f'FAIL - {what}' + (f': {detail}' if detail else ''), flush=True)
    return cond


def finish():
    """Prints the count of failed checks and exits 1 if there were any."""
    print('%d failed' % failures)
    sys.exit(1 if failures else 0)
