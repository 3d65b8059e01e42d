"""PID 1 of a simulated zone.

Started by ``zone.boot`` in fresh namespaces.  It gives the zone its own
filesystem view (private /etc, /usr and /opt layered over the host's, its own
/var, fresh /tmp, /run and /etc/svc/volatile), tells the booting vmadm that
the mounts are ready, waits for SIGUSR1 (the NICs are plumbed), then runs
the SMF restarter (``smartos_sim.smf.startd``) and reaps orphans, as init
does.  When it dies the kernel ends every process of the zone.
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
    ).pid


def main(argv):
    zdir, _uuid, hostname, ready_fd = argv
    ready = int(ready_fd)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGCHLD})
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
    while True:
        signal.sigtimedwait({signal.SIGCHLD}, 1.0)
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == restarter:  # svc.startd died: init starts it again
                time.sleep(max(0.0, 1.0 - (time.monotonic() - last_start)))
                restarter = start_restarter()
                last_start = time.monotonic()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
