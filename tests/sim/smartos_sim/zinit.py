"""PID 1 of a simulated zone.

Started by ``zone.boot`` in fresh namespaces.  It gives the zone its own
filesystem view (private /etc, /usr and /opt layered over the host's, its own
/var, fresh /tmp, /run and /etc/svc/volatile), tells the booting vmadm that
the mounts are ready, waits for SIGUSR1 (the NICs are plumbed), then runs
the SMF restarter (``smartos_sim.smf.startd``) and reaps orphans, as init
does.  When it dies the kernel ends every process of the zone.

SIGTERM is ``init 5`` (what the zone's ``shutdown -i 5`` sends): init asks
svc.startd to take the milestone to none (SIGUSR2), waits for it to have
stopped every service and exited, then ends whatever is left (SIGTERM, a
moment, SIGKILL) and exits: the zone is down.
"""

import os
import signal
import socket
import subprocess
import sys
import time


def _mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def setup_filesystems(zdir):
    _mount("--make-rprivate", "/")
    for layer in ("etc", "usr", "opt"):
        upper = os.path.join(zdir, "root", layer)
        work = os.path.join(zdir, "work", layer)
        _mount("-t", "overlay", "overlay", "-o", f"lowerdir=/{layer},upperdir={upper},workdir={work}", f"/{layer}")
    _mount("--bind", os.path.join(zdir, "root", "var"), "/var")
    _mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp")
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    os.makedirs("/etc/svc/volatile", exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/etc/svc/volatile")
    _mount("-t", "proc", "proc", "/proc")
    _mount("-t", "sysfs", "sysfs", "/sys")
    os.chdir("/")


def setup_network():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    for key in ("all", "default"):
        try:
            with open(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "w") as fh:
                fh.write("1\n")
        except OSError:
            pass


def start_restarter():
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin:/opt/local/sbin:/opt/local/bin",
        "PYTHONPATH": "/usr/lib/smartos-sim",  # the zone's own copy (see zone.py)
        "LANG": "C.UTF-8",
    }
    return subprocess.Popen(
        ["/usr/bin/python3", "-m", "smartos_sim.smf.startd"],
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=unblock_signals,  # noqa: PLW1509 - init has no threads; its blocked signals are its own
    ).pid


def unblock_signals():
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def end_the_rest(grace=2.0):
    """What no service stopped: SIGTERM, a moment to exit, then SIGKILL."""
    me = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline and reap_all():
            time.sleep(0.05)


def reap_all():
    """Reap what has exited; whether any process but init is left."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def main(argv):
    zdir, _uuid, hostname, ready_fd = argv
    ready = int(ready_fd)
    # The kernel drops a signal sent to a PID namespace's init from inside
    # the namespace unless init handles it: a handler makes SIGTERM (from
    # the zone's shutdown) deliverable; it stays blocked and is taken below.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGCHLD, signal.SIGTERM})
    try:
        setup_filesystems(zdir)
        socket.sethostname(hostname[:63])
        setup_network()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        os.write(ready, f"zone init: {detail.strip()}\n".encode())
        return 1
    os.write(ready, b"mounted\n")
    os.close(ready)
    if signal.sigtimedwait({signal.SIGUSR1}, 120) is None:
        return 1
    restarter = start_restarter()
    last_start = time.monotonic()
    shutting_down = False
    while True:
        info = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM}, 1.0)
        if info is not None and info.si_signo == signal.SIGTERM and not shutting_down:
            shutting_down = True
            os.kill(restarter, signal.SIGUSR2)  # milestone none
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == restarter and shutting_down:  # every service is down
                end_the_rest()
                return 0
            if pid == restarter:  # svc.startd died: init starts it again
                time.sleep(max(0.0, 1.0 - (time.monotonic() - last_start)))
                restarter = start_restarter()
                last_start = time.monotonic()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
