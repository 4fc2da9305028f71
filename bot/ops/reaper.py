"""End the supervisor's services when the supervisor is gone, however it died (kill -9 included).

The supervisor starts this script with a pipe as its standard input and writes one line per change:
`+<pgid>` when a service's process group starts, `-<pgid>` once it has stopped that group itself.
End of input means the supervisor exited: the kernel closes the pipe even when the process was
killed outright. Every group still listed then gets SIGTERM and, after a grace period, SIGKILL.
Signalling the group and not one process reaches what a service's main process started too: a
wrapper's real server, a server's workers. A parent-death signal (set on each service as well)
reaches only the one process.

A plain script in the interpreter's standard library only (`python -I -S reaper.py <grace>`): it
starts in milliseconds and nothing it imports can fail.
"""

import os
import signal
import sys
import time


def main() -> None:
    grace = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    # Ctrl-C and a closed terminal are the supervisor's to handle; it tells us by closing the pipe.
    for ignored in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(ignored, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        sign, number = line[:1], line[1:].strip()
        if not number.isdigit():
            continue
        if sign == "+":
            groups.add(int(number))
        elif sign == "-":
            groups.discard(int(number))
    end_groups(groups, grace)


def end_groups(groups: set[int], grace: float) -> None:
    """SIGTERM every group, then SIGKILL those still there after `grace` seconds."""
    left = {group for group in groups if signal_group(group, signal.SIGTERM)}
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {group for group in left if signal_group(group, 0)}
    for group in left:
        signal_group(group, signal.SIGKILL)


def signal_group(group: int, signum: int) -> bool:
    """Send `signum` to process group `group`; False if the group is gone."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the number now belongs to someone else's group: not ours to end
        return False
    return True


if __name__ == "__main__":
    main()
