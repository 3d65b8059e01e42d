"""A real salt-master and one salt-minion per simulated hypervisor, for the demo and benchmarks.

Given a ``smartos_sim`` test bed, ``SaltCluster`` writes a master and minion
configuration under a temporary directory inside the bed's base directory,
starts ``salt-master`` and one ``salt-minion`` per hypervisor (id ``gz1``,
``gz2``...) as foreground subprocesses, and stops them by their PIDs.  The
master serves the formula (file_roots: a top.sls applying ``ucarp`` to
``gz*``, the repository's ``salt/`` and the repository itself), pillar from a
Python dict, the formula's reactor for ``ucarp/*/master`` and
``ucarp/*/backup``, and listens on free localhost ports only, so a master
already running on the machine is not disturbed.  Each minion runs with its
hypervisor's environment (``bed.gz(name).env``: the simulated ``vmadm``,
``zlogin``... on PATH). The daemons run as a service manager starts them:
without the caller's ``PYTHONDONTWRITEBYTECODE`` (some shells and CI images
set it), which would make every minion job compile the formula's modules
again.

``MasterEvents`` reads the master's event bus in a background thread, with
the time each event arrived.

    cluster = SaltCluster(bed, pillar, minions=("gz1", "gz2"))
    cluster.start()               # both minions answer test.ping
    with cluster.events() as bus:
        cluster.salt("gz*", "state.highstate")
        event = bus.wait("ucarp/web/failover/complete", after=t0, timeout=90)
    cluster.stop()
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sim"))

from smartos_sim import vipapp  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
# The formula's engine on each hypervisor (sub-second delivery of transitions),
# read from the checkout as an operator's formula directory: engines start with
# the minion, before any saltutil.sync_all.
ENGINE = {"engines": [{"ucarp": {"interval": 0.1}}], "engines_dirs": [os.path.join(REPO, "_engines")]}
REACTOR = [
    {"ucarp/*/master": ["salt://reactor/ucarp/transition.sls"]},
    {"ucarp/*/backup": ["salt://reactor/ucarp/transition.sls"]},
    {"ucarp/*/health/*": ["salt://reactor/ucarp/health.sls"]},
]


class SaltError(Exception):
    """A Salt daemon or command did not do what was asked, in time."""


def free_ports(count):
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def write_json(path, data):
    """Write ``data`` as JSON (which is YAML, for Salt's config and SLS files)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no log)"


class Daemon:
    """A Salt daemon run in the foreground as our child, in its own process group."""

    def __init__(self, name, argv, env, log_file):
        self.name = name
        self.log_file = log_file
        env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a service runs
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def check(self):
        """Raise if the daemon has exited."""
        code = self.proc.poll()
        if code is not None:
            raise SaltError(f"{self.name} exited with status {code}; its log ends:\n{tail(self.log_file)}")

    def terminate(self):
        """Ask the daemon to end: SIGTERM to our child's PID."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self, deadline):
        """Wait until ``deadline`` (monotonic) for it to end, then SIGKILL its process group."""
        pid = self.proc.pid
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pid, signal.SIGKILL)  # the group we created: this daemon and its workers only
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class SaltCluster:
    """A salt-master and its hypervisor minions on a ``smartos_sim`` bed."""

    def __init__(self, bed, pillar, minions=("gz1", "gz2"), states_target="gz*", engine=True):
        self.bed = bed
        self.minions = tuple(minions)
        self.base = tempfile.mkdtemp(prefix="salt-", dir=bed.base)
        self.master_conf = os.path.join(self.base, "master", "conf")
        self.daemons = []
        self.engine = engine  # the formula's engine beside the beacon on each minion
        self._write_roots(pillar, states_target)
        ports = free_ports(6)
        self._write_master(ports)
        for name in self.minions:
            self._write_minion(name, ports[1])

    # -- configuration -----------------------------------------------------------

    def _write_roots(self, pillar, states_target):
        self.states_dir = os.path.join(self.base, "states")
        self.pillar_dir = os.path.join(self.base, "pillar")
        write_json(os.path.join(self.states_dir, "top.sls"), {"base": {states_target: ["ucarp"]}})
        # The formula's extension modules as an operator's file_roots holds
        # them: the repository itself (with its virtualenvs) would make every
        # highstate's module sync list tens of thousands of files.
        self.formula_dir = os.path.join(self.base, "formula")
        os.makedirs(self.formula_dir)
        for kind in ("_modules", "_states", "_utils", "_beacons", "_engines", "_runners"):
            os.symlink(os.path.join(REPO, kind), os.path.join(self.formula_dir, kind))
        write_json(os.path.join(self.pillar_dir, "top.sls"), {"base": {"*": ["ucarp"]}})
        self.set_pillar(pillar)

    def set_pillar(self, pillar):
        """Rewrite the pillar (``ucarp.sls``); minions see it after ``saltutil.refresh_pillar``."""
        write_json(os.path.join(self.pillar_dir, "ucarp.sls"), pillar)

    def _common(self, root):
        return {
            "root_dir": root,
            "pki_dir": os.path.join(root, "pki"),
            "cachedir": os.path.join(root, "cache"),
            "sock_dir": os.path.join(root, "sock"),
            "pidfile": os.path.join(root, "run", "salt.pid"),
            "log_file": os.path.join(root, "log"),
            "log_level_logfile": "info",
        }

    def _write_master(self, ports):
        root = os.path.join(self.base, "master")
        self.master_opts = {
            "id": "demo-master",
            "interface": "127.0.0.1",
            "publish_port": ports[0],
            "ret_port": ports[1],
            "tcp_master_pub_port": ports[2],
            "tcp_master_pull_port": ports[3],
            "tcp_master_publish_pull": ports[4],
            "tcp_master_workers": ports[5],
            **self._common(root),
            "auto_accept": True,
            "file_roots": {"base": [self.states_dir, os.path.join(REPO, "salt"), self.formula_dir]},
            "pillar_roots": {"base": [self.pillar_dir]},
            "reactor": REACTOR,
        }
        write_json(os.path.join(self.master_conf, "master"), self.master_opts)

    def _write_minion(self, name, master_port):
        root = os.path.join(self.base, f"minion-{name}")
        port_a, port_b = free_ports(2)
        opts = {
            "id": name,
            "master": "127.0.0.1",
            "master_port": master_port,
            "tcp_pub_port": port_a,
            "tcp_pull_port": port_b,
            **self._common(root),
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 5,
            **(ENGINE if self.engine else {}),
        }
        write_json(os.path.join(root, "conf", "minion"), opts)

    def minion_log(self, name):
        return os.path.join(self.base, f"minion-{name}", "log")

    @property
    def master_log(self):
        return os.path.join(self.base, "master", "log")

    # -- daemons -------------------------------------------------------------------

    def start(self, timeout=150):
        """Start the master and the minions together; wait until every minion answers test.ping."""
        master_argv = [os.path.join(BIN, "salt-master"), "-c", self.master_conf, "-l", "quiet"]
        self.daemons.append(Daemon("salt-master", master_argv, dict(os.environ), self.master_log))
        for name in self.minions:
            conf = os.path.join(self.base, f"minion-{name}", "conf")
            argv = [os.path.join(BIN, "salt-minion"), "-c", conf, "-l", "quiet"]
            self.daemons.append(Daemon(f"salt-minion {name}", argv, self.bed.gz(name).env, self.minion_log(name)))
        deadline = time.monotonic() + timeout
        answered = {}
        for _ in range(int(timeout) + 2):
            for daemon in self.daemons:
                daemon.check()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            answered = self._ping(timeout=min(5, max(1, int(left))))
            if all(answered.get(m) is True for m in self.minions):
                return
            time.sleep(1)
        raise SaltError(f"minions not answering test.ping after {timeout}s: {sorted(answered)} answered")

    def minion(self, name):
        """A handle on one hypervisor's minion, for a reboot of that
        hypervisor (``GlobalZone.reboot(daemons=[...])``): ``terminate()``
        stops it (by PID), ``start()`` starts a new one."""
        cluster = self

        class Handle:
            def terminate(self):
                for daemon in [d for d in cluster.daemons if d.name == f"salt-minion {name}"]:
                    daemon.terminate()
                    daemon.stop(time.monotonic() + 15)
                    cluster.daemons.remove(daemon)

            def start(self):
                conf = os.path.join(cluster.base, f"minion-{name}", "conf")
                argv = [os.path.join(BIN, "salt-minion"), "-c", conf, "-l", "quiet"]
                cluster.daemons.append(
                    Daemon(f"salt-minion {name}", argv, cluster.bed.gz(name).env, cluster.minion_log(name))
                )

        return Handle()

    def _ping(self, timeout):
        try:
            proc = self.run_cli("salt", "-t", str(timeout), "--static", "--out=json", "gz*", "test.ping",
                                timeout=timeout + 30)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {}
        return parse_json(proc.stdout) or {}

    def stop(self, grace=15):
        """Stop every daemon we started, by PID: SIGTERM to all, SIGKILL after ``grace`` s."""
        for daemon in self.daemons:
            daemon.terminate()
        deadline = time.monotonic() + grace
        for daemon in self.daemons:
            daemon.stop(deadline)
        self.daemons = []

    @property
    def pids(self):
        return {d.name: d.proc.pid for d in self.daemons}

    # -- commands ------------------------------------------------------------------

    def run_cli(self, tool, *args, timeout=600):
        argv = [os.path.join(BIN, tool), "-c", self.master_conf, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def salt(self, tgt, fun, *args, timeout=600):
        """``salt <tgt> <fun> <args>``: {minion: return}; raises if a minion is missing or the CLI fails."""
        proc = self.run_cli("salt", "-t", str(timeout), "--static", "--out=json", tgt, fun, *args,
                            timeout=timeout + 60)  # fmt: skip
        data = parse_json(proc.stdout)
        if not isinstance(data, dict):
            raise SaltError(f"salt {tgt} {fun}: no JSON answer (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
        expected = self.minions if tgt == "gz*" else ()
        missing = [m for m in expected if m not in data]
        if missing:
            raise SaltError(f"salt {tgt} {fun}: no answer from {', '.join(missing)}")
        return data

    def salt_run(self, fun, *args, timeout=300):
        """``salt-run <fun> <args>``: its return, parsed from JSON."""
        proc = self.run_cli("salt-run", "--out=json", "-t", str(timeout), fun, *args, timeout=timeout + 60)
        data = parse_json(proc.stdout)
        if proc.returncode != 0 or data is None:
            raise SaltError(f"salt-run {fun} failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
        return data

    def events(self):
        """A reader of the master's event bus (a context manager)."""
        return MasterEvents(self.master_opts, self.master_conf)


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


class Event:
    """One event from the master's bus, with the local time it was read."""

    def __init__(self, tag, data, seen):
        self.tag = tag
        self.data = data
        self.seen = seen

    def __repr__(self):
        return f"Event({self.tag!r}, seen={self.seen:.3f})"


def tag_matches(tag, pattern):
    """``pattern`` is a tag or a prefix ending in ``*`` (``ucarp/web/*``)."""
    return tag.startswith(pattern[:-1]) if pattern.endswith("*") else tag == pattern


class MasterEvents:
    """The master's event bus, read in a background thread.

    Every event is kept with the wall-clock time (``time.time()``) it was read;
    ``wait`` and ``since`` search them by tag, time and predicate.
    """

    def __init__(self, master_opts, master_conf):
        self.master_conf = master_conf
        self.sock_dir = master_opts["sock_dir"]
        self.events = []
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._read, name="master-events", daemon=True)

    def __enter__(self):
        self.thread.start()
        if not self.ready.wait(30) or self.error:
            raise SaltError(f"cannot read the master's event bus: {self.error or 'timed out'}")
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=5)

    def _read(self):
        import salt.config  # noqa: PLC0415 - Salt is imported only where the bus is read
        import salt.utils.event  # noqa: PLC0415

        try:
            opts = salt.config.client_config(os.path.join(self.master_conf, "master"))
            bus = salt.utils.event.get_master_event(opts, self.sock_dir, listen=True)
            bus.connect_pub(timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported to the caller by __enter__
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        with bus:
            while not self.stopping.is_set():
                item = bus.get_event(wait=0.2, full=True, auto_reconnect=True)
                if item:
                    with self.cond:
                        self.events.append(Event(item["tag"], item["data"], time.time()))
                        self.cond.notify_all()

    def since(self, pattern, after=0.0, predicate=None):
        """Events matching ``pattern`` read after ``after`` (epoch seconds), oldest first."""
        with self.cond:
            found = [e for e in self.events if e.seen >= after and tag_matches(e.tag, pattern)]
        return [e for e in found if predicate is None or predicate(e)]

    def wait(self, pattern, after=0.0, predicate=None, timeout=90.0):
        """The first event matching, waiting up to ``timeout`` s; None if none came."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 2):
            found = self.since(pattern, after, predicate)
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self.cond:
                self.cond.wait(min(0.1, left))
        return None


# -- the formula's events -------------------------------------------------------------


def runners_in_flight(bus, fun="runner.ucarp.transition", after=0.0):
    """JIDs of ``fun`` runner jobs (the reactor's) that started and have not returned."""
    jobs = bus.since("salt/run/*", after)
    started = {e.data.get("jid") for e in jobs if e.tag.endswith("/new") and e.data.get("fun") == fun}
    return started - {e.data.get("jid") for e in jobs if e.tag.endswith("/ret")}


def unanswered(bus, cluster, after=0.0):
    """Zones of ``cluster`` whose last transition event has no reaction yet.

    A transition ``ucarp/<cluster>/<role>`` (zone, epoch, seq) is answered by
    a ``failover/complete`` or ``alert/*`` event naming that zone with that
    record, or a later one of its epoch, in ``transition`` or ``transitions``
    (every transition one convergence covered).  Also not settled while a
    reactor runner still runs.
    """
    last_sent, answered = {}, {}
    for event in bus.since(f"ucarp/{cluster}/*", after):
        kind = event.tag.split("/", 2)[2]
        if kind in ("master", "backup"):
            item = event.data.get("data") or {}
            last_sent[item.get("zone")] = (item.get("epoch", ""), item.get("seq", 0))
        elif isinstance(event.data.get("transition"), dict):
            # One convergence answers every transition it covers (``transitions``).
            for each in event.data.get("transitions") or [event.data["transition"]]:
                epoch, seq = each.get("epoch", ""), each.get("seq", 0)
                found = answered.setdefault(each.get("zone"), {})
                found[epoch] = max(found.get(epoch, 0), seq)
    pending = sorted(z for z, (epoch, seq) in last_sent.items() if answered.get(z, {}).get(epoch, 0) < seq)
    return pending + sorted(runners_in_flight(bus, after=after))


# -- the example cluster of the demo and the benchmark ----------------------------------

APP = vipapp.FMRI
WEB_VIP = "192.0.2.100"
WEB = {
    "vip": WEB_VIP,
    "prefixlen": 24,
    "vhid": 101,
    "password": "demo-S3cret",
    "advbase": 1,
    "deadratio": 3,
    "preempt": False,
    "zone": {"max_physical_memory": 512, "nic_tag": "admin"},
    "nodes": {
        "web-a": {"host": "gz1", "ip": "192.0.2.11"},
        "web-b": {"host": "gz2", "ip": "192.0.2.12", "advskew": 20},  # the usual backup, as in pillar.example
    },
    "on_master": [{"svc_enable": APP}],
    "on_backup": [{"svc_disable": APP}],
}
PILLAR = {"ucarp": {"clusters": {"web": WEB}}, "beacons": {"ucarp": [{"interval": 1}]}}


def zone_uuid(bed, alias):
    """The UUID of a node's zone of the example cluster (``vmadm lookup`` on its hypervisor)."""
    gz = bed.gz(WEB["nodes"][alias]["host"])
    return gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()


def install_app(bed, alias):
    """The test bed's web service (smartos_sim.vipapp) in a zone: imported, disabled.

    The cluster's ``on_master`` action enables it in the zone that takes the
    VIP, ``on_backup`` disables it in the others.
    """
    try:
        vipapp.install(bed.gz(WEB["nodes"][alias]["host"]), zone_uuid(bed, alias), WEB_VIP)
    except RuntimeError as exc:
        raise SaltError(f"{alias}: {exc}") from None


def app_answer(bed, client, timeout=2):
    """What a client host gets from the web service on the VIP, or None."""
    return vipapp.answer(bed, client, WEB_VIP, timeout)
