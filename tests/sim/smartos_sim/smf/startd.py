"""svc.startd: the master restarter of a simulated zone.

Run as ``python3 -m smartos_sim.smf.startd``.  Every 0.1 s while a method
runs or an action waits, otherwise when it is woken (SIGHUP from svcadm and
svccfg, the end of a process in a contract) or every 5 s, it reads the
repository and the volatile state, consumes the
actions queued by svcadm/svccfg, and drives each instance towards its
enabled state: it runs methods, watches contracts (processes carrying the
instance's ``SMF_SIM_CTID`` marker), restarts instances whose contract
empties and puts them in maintenance when they fail too often
(RINST_START_TIMES / RINST_FAILURE_RATE_NS and FAULT_THRESHOLD of illumos
``startd.h``).  SIGTERM makes it exit and leave the services running; a new
startd re-adopts them from the volatile state.

SIGUSR2 is the zone's shutdown (``init 5``, what ``shutdown -i 5`` asks for,
sent by the zone's init): the milestone goes to none. Every running
instance is stopped, its stop method run within its timeout, an instance
only once nothing that depends on it is still up (dependents first, the
rest in parallel); the enabled states in the repository do not change, so
the same services start at the next boot. When nothing runs, startd exits
and init halts the zone.
"""

import json
import os
import secrets
import select
import signal
import sys
import time

from smartos_sim.common import zone_path

from . import contracts, repository, volatile
from .jsonstore import locked, read_json, write_json
from .methods import (
    NOT_RETRYABLE,
    SMF_EXIT_ERR_CONFIG,
    SMF_EXIT_NODAEMON,
    MethodSetupError,
    expand,
    log_line,
    spawn,
)

TICK = 0.1
IDLE_TICK = 5.0  # nothing in progress: SMF's restarter waits for events, not a clock
RINST_START_TIMES = 5  # failures to consider
RINST_FAILURE_RATE_NS = 600_000_000_000  # 1 failure/10 minutes
FAULT_THRESHOLD = 3
UP = ("online", "degraded")


def _sig_name(num):
    try:
        return signal.Signals(num).name[3:]
    except ValueError:
        return str(num)


class Restarter:
    def __init__(self):
        self.stopping = False
        self.shutdown = False  # milestone none: stop everything, then exit
        self.woken = False
        self.ops = {}  # fmri -> current method/drain operation (in memory only)
        self.rt = {}  # fmri -> runtime dict (mirrored to volatile)
        self.pending = {}  # fmri -> [actions]
        self.repo = None
        self.repo_stamp = None
        self.scan = {}
        self.boot_id = None
        self.next_ctid = 1
        self.children = []  # wait-style start processes still to be reaped
        self.watched = {}  # pid -> pidfd of a contract's process: its end wakes the restarter
        self.ended = set()  # pids whose end was seen (their /proc entry may linger)
        self.wake_r = None
        self.busy = True

    # ----------------------------------------------------------- plumbing
    def load_repo(self):
        path = repository.repo_path()
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if self.repo is None or stamp != self.repo_stamp:
            self.repo = repository.load()
            self.repo_stamp = stamp

    def new_marker(self):
        ctid = self.next_ctid
        self.next_ctid += 1
        return ctid, f"{self.boot_id}:{ctid}"

    def set_state(self, fmri, state, next_state="none", aux=None):
        rt = self.rt[fmri]
        if rt.get("state") != state:
            rt["stime"] = time.time()
        rt["state"] = state
        rt["next_state"] = next_state
        if aux is not None:
            rt["aux_state"] = aux
        elif state != "maintenance":
            rt["aux_state"] = "none"

    def pgs(self, fmri):
        svc, inst = repository.lookup(self.repo, fmri)
        return repository.running_pgs(svc, inst)

    def duration(self, pgs):
        d = repository.get_value(pgs, "startd", "duration", "contract")
        return {"wait": "child"}.get(d, d)

    # ----------------------------------------------------------- lifecycle
    def boot(self):
        os.makedirs(zone_path("etc/svc/volatile"), exist_ok=True)
        os.makedirs(zone_path("var/svc/log"), exist_ok=True)
        with volatile.updated() as vol:
            self.boot_id = vol.setdefault("boot_id", secrets.token_hex(6))
            self.next_ctid = vol.get("next_ctid", 1)
            self.rt = {k: dict(v) for k, v in vol["instances"].items()}
        with open(volatile.pid_path(), "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        self.load_repo()
        self.scan = contracts.scan()
        for fmri, rt in self.rt.items():
            self.adopt(fmri, rt)

    def adopt(self, fmri, rt):
        """Take over an instance left by a previous startd of this boot."""
        nxt = rt.get("next_state", "none")
        if nxt == "none":
            return
        alive = self.scan.get(rt.get("marker") or "", [])
        if nxt == "online":
            if alive and rt.get("duration") != "transient":
                self.set_state(fmri, "online")
            else:
                self.set_state(fmri, "offline")
                rt["marker"] = None
        else:
            contracts.kill(alive, signal.SIGKILL)
            rt["marker"] = None
            self.set_state(fmri, nxt if nxt != "none" else rt.get("state", "offline"))

    def run(self):
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        signal.signal(signal.SIGHUP, self.on_hup)
        signal.signal(signal.SIGUSR2, self.on_shutdown)
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)  # a signal ends the wait at once
        self.boot()
        while not self.stopping:
            try:
                self.tick()
                if self.shutdown and self.all_down():
                    break
            except Exception as exc:  # noqa: BLE001 - keep the restarter alive
                print(f"svc.startd: {exc.__class__.__name__}: {exc}", file=sys.stderr)
                self.busy = True
            if not self.stopping and not self.woken:
                self.wait(TICK if self.busy or self.ops or self.pending or self.children else IDLE_TICK)
            self.woken = False
        try:
            if open(volatile.pid_path(), encoding="ascii").read().strip() == str(os.getpid()):
                os.unlink(volatile.pid_path())
        except OSError:
            pass
        return 0

    def wait(self, timeout):
        """Sleep until a signal, the end of a contract's process, or ``timeout``."""
        members = {pid for pids in self.scan.values() for pid in pids}
        self.ended &= members
        for pid in set(self.watched) - members:
            os.close(self.watched.pop(pid))
        for pid in members - set(self.watched) - self.ended:
            try:
                self.watched[pid] = os.pidfd_open(pid)
            except OSError:  # gone already: look again soon
                timeout = TICK
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        for fd in self.watched.values():
            poller.register(fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(timeout * 1000)}
        for pid, fd in list(self.watched.items()):
            if fd in ready:  # it ended: the next tick sees whether its contract emptied
                os.close(self.watched.pop(pid))
                self.ended.add(pid)
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def on_term(self, _signum, _frame):
        self.stopping = True

    def on_hup(self, _signum, _frame):
        self.woken = True

    def on_shutdown(self, _signum, _frame):
        self.shutdown = True
        self.woken = True

    def all_down(self):
        """Nothing runs and nothing is being stopped (the shutdown is done)."""
        return not self.ops and not any(rt.get("state") in UP for rt in self.rt.values())

    def dependents_up(self, fmri):
        """Whether an instance that depends on ``fmri`` is still up or changing."""
        sname, _iname = repository.split_fmri(fmri)
        for other, _s, _i in repository.instances(self.repo):
            rt = self.rt.get(other, {})
            if other == fmri or (rt.get("state") not in UP and other not in self.ops):
                continue
            for pg in self.pgs(other).values():
                if pg.get("type") != "dependency":
                    continue
                grouping = (pg["props"].get("grouping", {}).get("values") or ["require_all"])[0]
                if grouping == "exclude_all":
                    continue
                for entity in pg["props"].get("entities", {}).get("values", []):
                    if entity in (fmri, f"svc:/{sname}"):  # the instance, or its whole service
                        return True
        return False

    # ----------------------------------------------------------- the tick
    def tick(self):
        self.load_repo()
        self.children = [p for p in self.children if p.poll() is None]
        self.scan = contracts.scan()
        path = volatile.state_path()
        with locked(path):
            vol = read_json(path, volatile._empty)
            before = json.dumps(vol, sort_keys=True)
            for act in vol.get("actions", []):
                self.pending.setdefault(act["fmri"], []).append(act)
            vol["actions"] = []
            overrides = vol.get("overrides", {})
            known = {f for f, _s, _i in repository.instances(self.repo)}
            for fmri in sorted(set(self.rt) - known):
                self.forget(fmri)
            for fmri in sorted(known):
                self.rt.setdefault(fmri, {"state": "uninitialized", "next_state": "none"})
            for fmri in sorted(known):
                svc, inst = repository.lookup(self.repo, fmri)
                pers = repository.persistent_enabled(svc, inst)
                ovr = overrides.get(fmri)
                enabled = pers if ovr is None else ovr
                self.rt[fmri]["enabled"] = enabled
                self.rt[fmri]["temporary"] = ovr is not None and ovr != pers
                self.rt[fmri]["logfile"] = repository.log_path(fmri)
                if self.shutdown:
                    self.step_down(fmri)
                else:
                    self.step(fmri, enabled)
            for fmri in set(self.pending) - known:
                self.pending.pop(fmri)
            vol["instances"] = self.rt
            vol["next_ctid"] = self.next_ctid
            vol["boot_id"] = self.boot_id
            self.busy = json.dumps(vol, sort_keys=True) != before  # a change may lead to the next
            if self.busy:
                write_json(path, vol)

    def forget(self, fmri):
        """The instance was deleted: stop whatever it still runs."""
        rt = self.rt.pop(fmri)
        self.ops.pop(fmri, None)
        self.pending.pop(fmri, None)
        pids = self.scan.get(rt.get("marker") or "", [])
        contracts.kill(pids, signal.SIGTERM)

    # ----------------------------------------------------------- dependencies
    def dep_up(self, entity):
        if entity.startswith("file://"):
            path = entity[len("file://") :]
            if path.startswith("localhost/"):
                path = path[len("localhost") :]
            return os.path.exists(zone_path(path)), os.path.exists(zone_path(path))
        sname, iname = repository.split_fmri(entity)
        svc = self.repo["services"].get(sname)
        if svc is None or (iname is not None and iname not in svc["instances"]):
            return False, False  # absent
        names = [iname] if iname else list(svc["instances"])
        states = [self.rt.get(f"svc:/{sname}:{n}", {}).get("state") for n in names]
        return any(s in UP for s in states), True

    def deps_ok(self, pgs, running=False):
        """Whether the instance's dependencies are satisfied. For a running
        instance only those whose ``restart_on`` is not ``none`` count: a
        dependency with ``restart_on="none"`` orders the start and nothing
        else (it never stops its dependent)."""
        for pg in pgs.values():
            if pg.get("type") != "dependency":
                continue
            props = pg["props"]
            if running and (props.get("restart_on", {}).get("values") or ["none"])[0] == "none":
                continue
            grouping = (props.get("grouping", {}).get("values") or ["require_all"])[0]
            entities = props.get("entities", {}).get("values", [])
            results = [self.dep_up(e) for e in entities]
            if grouping == "require_all" and not all(up for up, _ex in results):
                return False
            if grouping == "require_any" and results and not any(up for up, _ex in results):
                return False
            if grouping == "exclude_all" and any(up for up, _ex in results):
                return False
            if grouping == "optional_all":
                for entity, (up, exists) in zip(entities, results, strict=True):
                    if up or not exists or entity.startswith("file://"):
                        continue
                    st = self.entity_states(entity)
                    if any(s in ("offline", "uninitialized") for s in st):
                        return False
        return True

    def entity_states(self, entity):
        sname, iname = repository.split_fmri(entity)
        svc = self.repo["services"].get(sname, {"instances": {}})
        names = [iname] if iname else list(svc["instances"])
        out = []
        for n in names:
            rt = self.rt.get(f"svc:/{sname}:{n}", {})
            if rt.get("enabled"):
                out.append(rt.get("state"))
        return out

    # ----------------------------------------------------------- state machine
    def step(self, fmri, enabled):
        rt = self.rt[fmri]
        if fmri in self.ops:
            self.advance(fmri)
            return
        for act in self.pending.pop(fmri, []):
            self.action(fmri, act, enabled)
            if fmri in self.ops:
                return
        state = rt["state"]
        pgs = self.pgs(fmri)
        if state == "maintenance":
            if not enabled:
                self.set_state(fmri, "disabled")
            return
        if state in ("uninitialized", "disabled"):
            if enabled:
                log_line(fmri, "Enabled.")
                rt["start_times"] = []
                rt["fault_count"] = 0
                self.set_state(fmri, "offline")
                state = "offline"
            elif state == "uninitialized":
                self.set_state(fmri, "disabled")
                return
            else:
                return
        if state == "offline":
            if not enabled:
                self.set_state(fmri, "disabled")
            elif self.deps_ok(pgs):
                self.start(fmri, pgs)
            else:
                rt["next_state"] = "none"
            return
        if state in UP:
            if not enabled:
                log_line(fmri, "Stopping because service disabled.")
                self.stop(fmri, pgs, "disabled")
            elif not self.deps_ok(pgs, running=True):
                log_line(fmri, "Stopping because dependency activity requires stop.")
                self.stop(fmri, pgs, "offline")
            elif rt.get("marker") and not self.scan.get(rt["marker"]):
                log_line(fmri, "Stopping because all processes in service exited.")
                self.stop(fmri, pgs, "offline")

    def step_down(self, fmri):
        """The shutdown's step: stop a running instance once its dependents are down."""
        self.pending.pop(fmri, None)  # administrative requests no longer matter
        if fmri in self.ops:
            self.advance(fmri)
            return
        rt = self.rt[fmri]
        if rt["state"] in UP and not self.dependents_up(fmri):
            log_line(fmri, "Stopping because dependency activity requires stop.")
            self.stop(fmri, self.pgs(fmri), "offline")
        elif rt["state"] not in UP:
            rt["next_state"] = "none"

    def action(self, fmri, act, enabled):
        rt = self.rt[fmri]
        kind = act["action"]
        state = rt["state"]
        pgs = self.pgs(fmri)
        if kind == "clear":
            if state == "maintenance":
                log_line(fmri, "Leaving maintenance because clear requested.")
                rt["start_times"] = []
                rt["fault_count"] = 0
                self.set_state(fmri, "offline" if enabled else "disabled")
                if enabled:
                    log_line(fmri, "Enabled.")
            elif state == "degraded":
                self.set_state(fmri, "online")
        elif kind == "restart" and state in UP:
            log_line(fmri, "Stopping because service restarting.")
            self.stop(fmri, pgs, "offline")
        elif kind == "refresh":
            log_line(fmri, "Rereading configuration.")
            command = repository.get_value(pgs, "refresh", "exec")
            if state in UP and command:
                self.run_method(fmri, pgs, "refresh", command, then=state)
        elif kind == "maintenance":
            if state in UP and not act.get("immediate"):
                log_line(fmri, "Stopping for maintenance due to administrative_request.")
                self.stop(fmri, pgs, "maintenance", aux="administrative_request")
            else:
                if act.get("immediate"):
                    contracts.kill(self.scan.get(rt.get("marker") or "", []), signal.SIGKILL)
                rt["marker"] = None
                self.ops.pop(fmri, None)
                self.set_state(fmri, "maintenance", aux="administrative_request")
        elif kind == "degraded" and state == "online":
            self.set_state(fmri, "degraded")

    def timeout(self, pgs, method):
        try:
            t = int(repository.get_value(pgs, method, "timeout_seconds", "0"))
        except ValueError:
            t = 0
        return None if t <= 0 else t

    def start(self, fmri, pgs):
        rt = self.rt[fmri]
        times = rt.setdefault("start_times", [])
        times.append(time.time())
        count = int(repository.get_value(pgs, "startd", "critical_failure_count", RINST_START_TIMES))
        period = repository.get_value(pgs, "startd", "critical_failure_period", None)
        period_s = int(period) if period else RINST_FAILURE_RATE_NS / 1e9
        del times[:-count]
        if len(times) >= count and (times[-1] - times[0]) / (count - 1) < period_s:
            log_line(fmri, "Restarting too quickly, changing state to maintenance.")
            rt["marker"] = None
            self.set_state(fmri, "maintenance", aux="restarting_too_quickly")
            return
        rt["duration"] = self.duration(pgs)
        command = repository.get_value(pgs, "start", "exec")
        if command is None:
            log_line(fmri, "Method property group 'start' is not present.")
            self.set_state(fmri, "online")
            return
        self.run_method(fmri, pgs, "start", command, then="online")

    def stop(self, fmri, pgs, next_state, aux=None):
        rt = self.rt[fmri]
        command = repository.get_value(pgs, "stop", "exec")
        if command is None:
            log_line(fmri, "Method property group 'stop' is not present.")
            rt["marker"] = None
            self.set_state(fmri, next_state, aux=aux)
            return
        self.run_method(fmri, pgs, "stop", command, then=next_state, aux=aux)

    def run_method(self, fmri, pgs, method, command, *, then, aux=None):
        rt = self.rt[fmri]
        self.set_state(fmri, rt["state"], next_state=then)
        timeout = self.timeout(pgs, method)
        op = {
            "method": method,
            "then": then,
            "aux": aux,
            "timeout": timeout,
            "deadline": None if timeout is None else time.monotonic() + timeout,
            "proc": None,
            "drain": False,
        }
        cmd = command.strip()
        if cmd == ":true":
            log_line(fmri, f"Executing {method} method (null).")
            self.ops[fmri] = op
            self.finish(fmri, 0, log=False)
            return
        if cmd.startswith(":kill"):
            sig = signal.SIGTERM
            if cmd[5:].strip().startswith("-"):
                name = cmd[5:].strip()[1:]
                try:
                    sig = int(name) if name.isdigit() else signal.Signals("SIG" + name.upper())
                except (KeyError, ValueError):
                    sig = signal.SIGTERM
            log_line(fmri, f"Executing {method} method (:kill).")
            if not rt.get("marker"):
                log_line(fmri, 'Invalid use of ":kill" as stop method for transient service.')
                self.ops[fmri] = op
                self.finish(fmri, None, failed=True, retry=False, log=False)
                return
            contracts.kill(self.scan.get(rt["marker"], []), sig)
            op["drain"] = True
            self.ops[fmri] = op
            return
        text = expand(cmd, fmri, method, pgs)
        log_line(fmri, f'Executing {method} method ("{text}").')
        if method == "start":
            ctid, marker = self.new_marker()
            rt["ctid"], rt["marker"] = ctid, marker
        else:
            _ctid, marker = self.new_marker()
        try:
            op["proc"] = spawn(fmri, method, text, marker, pgs)
        except MethodSetupError as exc:
            log_line(fmri, str(exc))
            self.ops[fmri] = op
            self.finish(fmri, SMF_EXIT_ERR_CONFIG)
            return
        except OSError as exc:
            log_line(fmri, f"Couldn't fork to execute method: {exc.strerror}")
            self.ops[fmri] = op
            self.finish(fmri, None, failed=True, log=False)
            return
        op["marker"] = marker
        if method == "start":
            rt["start_pid"] = op["proc"].pid
        self.ops[fmri] = op
        if method == "start" and rt.get("duration") == "child":
            self.children.append(op["proc"])
            self.finish(fmri, 0, log=False)

    def advance(self, fmri):
        op = self.ops[fmri]
        rt = self.rt[fmri]
        now = time.monotonic()
        if op["proc"] is not None and not op["drain"]:
            status = op["proc"].poll()
            if status is None:
                if op["deadline"] is not None and now > op["deadline"]:
                    log_line(
                        fmri,
                        f"Method or service exit timed out.  Killing contract {rt.get('ctid')}.",
                    )
                    contracts.kill(self.scan.get(op["marker"], []), signal.SIGKILL)
                    op["proc"].kill()
                    self.finish(fmri, op["proc"].wait())
                return
            self.finish(fmri, status)
            return
        if op["drain"]:
            alive = self.scan.get(rt.get("marker") or "", [])
            if not alive:
                self.complete(fmri, op)
            elif op["deadline"] is not None and now > op["deadline"]:
                log_line(fmri, f"Method or service exit timed out.  Killing contract {rt.get('ctid')}.")
                contracts.kill(alive, signal.SIGKILL)
                rt["marker"] = None
                self.ops.pop(fmri)
                self.fail(fmri, op, retry=False)

    def finish(self, fmri, status, failed=False, retry=True, log=True):
        """The method ended with Popen return code ``status`` (negative: signal)."""
        op = self.ops[fmri]
        rt = self.rt[fmri]
        method = op["method"]
        if log and status is not None:
            if status < 0:
                log_line(fmri, f'Method "{method}" failed due to signal {_sig_name(-status)}.')
            else:
                log_line(fmri, f'Method "{method}" exited with status {status}.')
        if method == "start":
            rt["waitstatus"] = status
        if failed or status not in (0, SMF_EXIT_NODAEMON):
            if method == "start":
                rt["marker"] = None  # the contract is abandoned
            self.ops.pop(fmri)
            if status in NOT_RETRYABLE:
                retry = False
            self.fail(fmri, op, retry=retry)
            return
        rt["fault_count"] = 0
        if method == "start":
            if rt.get("duration") == "transient" or status == SMF_EXIT_NODAEMON:
                rt["marker"] = None
            self.ops.pop(fmri)
            self.set_state(fmri, "online")
            return
        if method == "stop" and rt.get("marker") and rt.get("duration") != "transient":
            op["drain"] = True
            op["proc"] = None
            return
        self.complete(fmri, op)

    def complete(self, fmri, op):
        rt = self.rt[fmri]
        self.ops.pop(fmri, None)
        if op["method"] == "stop":
            rt["marker"] = None
        nxt = "online" if op["then"] == "offline" and rt.get("enabled") and not self.shutdown else "none"
        self.set_state(fmri, op["then"], next_state=nxt, aux=op.get("aux"))

    def fail(self, fmri, op, retry=True):
        rt = self.rt[fmri]
        if self.shutdown and op["method"] == "stop":
            # Going down anyway: what the stop method left is killed, no retry.
            contracts.kill(self.scan.get(rt.get("marker") or "", []), signal.SIGKILL)
            rt["marker"] = None
            self.set_state(fmri, "maintenance", aux="method_failed")
            return
        if retry:
            rt["fault_count"] = rt.get("fault_count", 0) + 1
            if rt["fault_count"] < FAULT_THRESHOLD:
                # back to the state the method started from; the next tick retries
                self.set_state(fmri, rt["state"])
                if op["method"] == "stop":
                    self.stop(fmri, self.pgs(fmri), op["then"], aux=op.get("aux"))
                return
            aux = "fault_threshold_reached"
        else:
            aux = "method_failed"
        rt["fault_count"] = 0
        if op["method"] != "start":
            rt["waitstatus"] = None
        self.set_state(fmri, "maintenance", aux=aux)


def main(argv=None):
    return Restarter().run()


if __name__ == "__main__":
    sys.exit(main())
