"""
React to UCARP VIP transitions and report the fleet's VIPs (on the master).

The hypervisors' ``ucarp`` beacon sends each transition as the event
``ucarp/<cluster>/<role>``; the reactor hands it to ``ucarp.transition``,
which:

- trusts only the sending minion's id: the cluster, zone, VIP and VHID must
  match pillar, and pillar must say that this hypervisor hosts that zone.
  Anything else changes nothing and fires ``ucarp/<cluster>/alert/rejected``;
- processes each node's transitions once and in order (a gap is filled from
  the zone's own record, a repeat is ignored), then acknowledges the record
  to the sending hypervisor (``ucarp.ack``): the beacon sends a record again
  until a reaction has acknowledged it, so an event the reactor missed (it
  was still starting after a master restart) is not lost;
- converges the cluster on who holds its VIP, in two rounds each sent to
  all the cluster's hypervisors at once: ``ucarp.holders`` (again only
  while the VIP has not settled on one holder), then ``ucarp.run_actions``,
  where each hypervisor runs the ``on_master`` actions of the holder and
  the ``on_backup`` actions of the others among its own zones.  It fires
  ``ucarp/<cluster>/failover/complete`` with the actions and timings; no
  holder fires ``ucarp/<cluster>/alert/no-master``, several
  ``ucarp/<cluster>/alert/split-brain``.  A backlog of a cluster's
  transitions (its start-up election) converges once or twice, not once
  per event: while a convergence runs, the next one is queued and covers
  every transition recorded until it starts;
- compiles a sender's pillar once per change (files under ``pillar_roots``,
  the minion's grains; see ``_pillar_fingerprint``), not once per event.

``salt-run ucarp.status`` shows every cluster: VIP, master zone and
hypervisor, backups, last transition, alert.

:depends: the formula's ``ucarp_model`` util, synced to the master
    (``salt-run saltutil.sync_all``), or the formula pip-installed there
"""

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time

import salt.client
import salt.utils.event
import salt.utils.minions
import salt.version

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import ucarp_model as _packaged_model
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_model = None

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Seconds before LocalClient asks a silent minion whether it still runs the
# job (saltutil.find_job): a long job keeps it waiting, a job the minion
# dropped (it cannot decrypt it just after a master restart) is sent again
# within REPLY_WAIT instead of waiting all of it out.
CALL_TIMEOUT = 5
REPLY_WAIT = 60  # how long to keep asking a hypervisor that does not answer
ACK_KEY_RE = re.compile(r"^[0-9a-f-]{36}/[A-Za-z0-9_-]{1,63}(/health)?$")


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"ucarp: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if _packaged_model or "ucarp_model.normalise" in __utils__:
        return __virtualname__
    return (False, "ucarp: the formula's ucarp_model util is missing (run salt-run saltutil.sync_all)")


def _util(name):
    """A function of the formula's cluster model (``_utils/ucarp_model.py``)."""
    return getattr(_packaged_model, name) if _packaged_model else __utils__[f"ucarp_model.{name}"]


# State kept on the master -----------------------------------------------------


def _state_dir():
    path = os.path.join(__opts__["cachedir"], "ucarp")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class _Flock:
    """An exclusive ``flock`` on ``<cachedir>/ucarp/<name><suffix>.lock``.

    Each one opens the file afresh, so two threads of the reactor exclude
    each other as two processes do.
    """

    def __init__(self, name, suffix=""):
        self.path = os.path.join(_state_dir(), f"{name}{suffix}.lock")
        self.fd = None

    def acquire(self, wait=True):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def _locked(name):
    """The cluster's recorded state, one reader or writer at a time (the
    reactor runs several reactions at once)."""
    return _Flock(name)


def _converging(name):
    """The cluster's convergence (holders, actions), one at a time; a
    switchover or rollout holds it too, so no reaction acts meanwhile."""
    return _Flock(name, ".converge")


def _load(name):
    try:
        with open(os.path.join(_state_dir(), f"{name}.json"), encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    for key, empty in (("cursors", {}), ("last", None), ("alert", None), ("pending", [])):
        state.setdefault(key, empty)
    return state


def _save(name, state):
    path = os.path.join(_state_dir(), f"{name}.json")
    fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(f"{path}.tmp", path)


# Talking to the fleet ---------------------------------------------------------


class _CallError(Exception):
    """An execution function failed on a hypervisor (its return's ``retcode``
    says so), or the hypervisor did not answer.  ``str()`` is the reason: the
    function's own error text, or that it did not answer."""

    def __init__(self, minion, fun, reason):
        super().__init__(reason)
        self.minion, self.fun = minion, fun


def _failure(reply):
    """Why a full return (``LocalClient.cmd(..., full_return=True)``) is a
    failure, or None when it is not: the minion sets ``retcode`` (and, where
    it sends one, ``success``) from the function's outcome, an exception's
    included."""
    if reply.get("retcode", 0) != 0 or reply.get("success") is False:
        return str(reply.get("ret"))
    return None


def _fire(tag, data):
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)
    log.info("ucarp: fired %s", tag)


_CLIENTS = threading.local()


def _local():
    """This thread's ``LocalClient`` (the reactor runs reactions in a pool of
    threads; a client is not shared between them), made once: making one
    reads the master's configuration."""
    client = getattr(_CLIENTS, "client", None)
    if client is None or getattr(_CLIENTS, "pid", None) != os.getpid():
        client = _CLIENTS.client = salt.client.get_local_client(__opts__["conf_file"])
        _CLIENTS.pid = os.getpid()
    return client


def _cmd(hosts, fun, args=(), kwarg=None):
    """``LocalClient.cmd`` on a list of hypervisors at once (one publish),
    asked again (bounded) until each has answered: a minion that has just
    reconnected to a restarted master drops the first job it cannot
    decrypt.  The full return of each that answered."""
    replies = {}
    deadline = time.time() + REPLY_WAIT
    while True:
        missing = [h for h in hosts if h not in replies]
        got = _local().cmd(missing, fun, list(args), kwarg=kwarg, tgt_type="list", timeout=CALL_TIMEOUT,
                           full_return=True)  # fmt: skip
        # A minion that did not answer is left out, or (saltutil.find_job
        # found no such job: it dropped it) reported as "no_return".
        answered = {h: r for h, r in got.items() if isinstance(r, dict) and "ret" in r}
        replies.update({h: r for h, r in answered.items() if r.get("out") != "no_return"})
        if len(replies) == len(hosts) or time.time() >= deadline:
            return replies
        time.sleep(1)


def _call(minion, fun, *args, **kwargs):
    """Run an execution function on one minion and return its return;
    ``_CallError`` when it failed there or the minion did not answer."""
    reply = _cmd([minion], fun, args, kwargs or None).get(minion)
    if reply is None:
        raise _CallError(minion, fun, f"{minion} did not answer")
    reason = _failure(reply)
    if reason is not None:
        raise _CallError(minion, fun, reason)
    return reply.get("ret")


# The sender's pillar, compiled once per change ----------------------------------

# With an external pillar configured, files and grains do not say everything
# the pillar depends on: a cached model is then compiled again after this long.
EXT_PILLAR_TTL = 60
_MODELS = {}  # minion id -> (fingerprint, time compiled, clusters); this loader's copy of the disk cache


def _walk_files(root):
    """Every file under ``root`` (links followed, each directory once): (path, stat)."""
    seen, todo = set(), [root]
    while todo:
        top = todo.pop()
        try:
            st = os.stat(top)
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
            try:
                if entry.is_dir():
                    todo.append(entry.path)
                elif entry.is_file():
                    yield entry.path, entry.stat()
            except OSError:
                continue


def _pillar_fingerprint(minion):
    """What the compiled pillar of ``minion`` depends on, cheaply: the path,
    mtime and size of every file under the master's ``pillar_roots`` (a top
    file or SLS that changes, appears or goes), and the minion's grains as
    the master has them (the top file may match on them; the master's copy
    changes when the minion sends new ones: at its start, at a
    ``saltutil.refresh_pillar`` or ``refresh_grains``).  ``pillar.show_pillar``
    compiles from exactly these."""
    digest = hashlib.sha256()
    roots = __opts__.get("pillar_roots") or {}
    for env in sorted(roots):
        for root in roots[env] or []:
            for path, st in _walk_files(root):
                digest.update(f"{env}\0{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    _id, grains, _pillar = salt.utils.minions.get_minion_data(minion, __opts__)
    digest.update(json.dumps(grains, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _model_path(minion):
    folder = os.path.join(_state_dir(), "models")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, hashlib.sha256(minion.encode()).hexdigest()[:32] + ".json")


def _cached_clusters(minion, fingerprint):
    """The clusters compiled for ``minion`` with this fingerprint, from
    memory or the disk cache (shared with ``salt-run`` and with the
    reactor's next loader), or None."""
    ttl = EXT_PILLAR_TTL if __opts__.get("ext_pillar") else None

    def good(found):
        return found is not None and found[0] == fingerprint and (ttl is None or time.time() - found[1] <= ttl)

    found = _MODELS.get(minion)
    if not good(found):
        try:
            with open(_model_path(minion), encoding="utf-8") as fh:
                saved = json.load(fh)
            found = (saved["fingerprint"], saved["at"], saved["clusters"]) if saved["minion"] == minion else None
        except (OSError, ValueError, KeyError, TypeError):
            found = None
        if not good(found):
            return None
        _MODELS[minion] = found
    return found[2]


def _clusters(minion):
    """The validated clusters in the pillar of ``minion``: compiled on the
    master (``pillar.show_pillar``) when its pillar may have changed since
    the last time (``_pillar_fingerprint``), else the cached model.  The
    model carries no password."""
    fingerprint = _pillar_fingerprint(minion)
    clusters = _cached_clusters(minion, fingerprint)
    if clusters is not None:
        return clusters
    pillar = __salt__["pillar.show_pillar"](minion) or {}
    ucarp = pillar.get("ucarp") or {}
    clusters, problems = _util("normalise")(ucarp.get("clusters") or {}, ucarp.get("defaults") or {})
    if problems:
        log.warning("ucarp: the pillar of %s has problems: %s", minion, "; ".join(problems))
    clusters = json.loads(json.dumps(clusters))  # as the disk cache gives it back
    at = time.time()
    _MODELS[minion] = (fingerprint, at, clusters)
    path = _model_path(minion)
    fd = os.open(f"{path}.{threading.get_ident()}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"minion": minion, "fingerprint": fingerprint, "at": at, "clusters": clusters}, fh)
    os.replace(f"{path}.{threading.get_ident()}.tmp", path)
    log.debug("ucarp: compiled the pillar of %s", minion)
    return clusters


# The reaction -------------------------------------------------------------------


def _check_event(tag, data, kind="transition"):
    """The trusted sender and the checked payload of an event, or a reason to reject it.

    ``kind``: ``transition`` (``ucarp/<cluster>/<role>``) or ``health``
    (``ucarp/<cluster>/health/<state>``).  The payload comes back with the
    cluster's model as ``cluster``, from the sender's pillar.
    """
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None, None, "the event carries no sender id"
    sender, payload = data["id"], data.get("data")
    if not isinstance(payload, dict):
        return sender, None, "the event has no data"
    name, zone = payload.get("cluster"), payload.get("zone")
    if kind == "transition":
        what, good = payload.get("role"), payload.get("role") in ("master", "backup")
        expected = f"ucarp/{name}/{what}"
    else:
        what = payload.get("state")
        good = what in ("healthy", "sick") and payload.get("action") in _util("health_actions")()
        expected = f"ucarp/{name}/health/{what}"
    if not isinstance(name, str) or not CLUSTER_RE.match(name) or not good:
        return sender, None, f"malformed cluster or {'role' if kind == 'transition' else 'health state'}"
    if tag != expected:
        return sender, None, f"the tag {tag!r} does not match the data"
    if not isinstance(payload.get("seq"), int) or payload["seq"] < 1 or not isinstance(payload.get("ts"), int):
        return sender, None, "malformed sequence number or time"
    if not isinstance(payload.get("zone_uuid"), str) or not UUID_RE.match(payload["zone_uuid"]):
        return sender, None, "malformed zone UUID"
    clusters = _clusters(sender)
    node = clusters.get(name, {}).get("nodes", {}).get(zone) if isinstance(zone, str) else None
    if node is None:
        return sender, None, f"zone {zone!r} is not a node of cluster {name} in pillar"
    if node["host"] != sender:
        return sender, None, f"zone {zone} of cluster {name} is hosted by {node['host']}, not {sender}"
    if payload.get("vip") != clusters[name]["vip"] or payload.get("vhid") != clusters[name]["vhid"]:
        return sender, None, "the VIP or VHID does not match pillar"
    return sender, dict(payload, cluster=clusters[name]), None


def _reject(tag, sender, data, reason):
    name = None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        name = data["data"].get("cluster")
    safe = name if isinstance(name, str) and CLUSTER_RE.match(name) else "unknown"
    _fire(f"ucarp/{safe}/alert/rejected", {"sender": sender, "tag": str(tag)[:200], "reason": reason})
    log.warning("ucarp: rejected %s from %s: %s", tag, sender, reason)
    return {"rejected": reason}


def _holders(cluster):
    """The zones holding the VIP, and the hypervisors that did not say (no
    answer, or an error instead of the answer): one ``ucarp.holders`` to all
    the cluster's hypervisors at once."""
    hosts = sorted({node["host"] for node in cluster["nodes"].values()})
    replies = _cmd(hosts, "ucarp.holders", [cluster["name"]])
    found, said = [], set()
    for host, reply in replies.items():
        if _failure(reply) is None and isinstance(reply.get("ret"), dict):
            said.add(host)
            found += [{"zone": zone, "gz": host} for zone, held in reply["ret"].items() if held is True]
    return sorted(found, key=lambda h: h["zone"]), sorted(set(hosts) - said)


def _check(cluster, settle):
    """Who holds the VIP once it settles, and the hypervisors that never
    answered: the holders round, again only while there is not exactly one
    holder or a hypervisor is silent (bounded: ``settle`` seconds)."""
    deadline = time.time() + settle
    found, silent = _holders(cluster)
    while (len(found) != 1 or silent) and time.time() < deadline:
        time.sleep(0.5)
        found, silent = _holders(cluster)
    return found, silent


def _act(cluster, master):
    """Run the cluster's ``on_master`` actions in the holder and its
    ``on_backup`` actions in the other nodes: one ``ucarp.run_actions`` to
    every hypervisor with something to do, at once (each runs its own
    zones' actions).  What each action did, the holder's first."""
    order = [master["zone"]] + sorted(z for z in cluster["nodes"] if z != master["zone"])
    work = []
    for zone in order:
        role = "master" if zone == master["zone"] else "backup"
        if cluster[f"on_{role}"]:
            host = cluster["nodes"][zone]["host"]
            work.append({"zone": zone, "host": host, "role": role, "actions": cluster[f"on_{role}"]})
    if not work:
        return []
    hosts = sorted({w["host"] for w in work})
    replies = _cmd(hosts, "ucarp.run_actions", [cluster["name"]], {"work": work})
    done = {}
    for host in hosts:
        mine = [w for w in work if w["host"] == host]
        reply = replies.get(host)
        reason = f"{host} did not answer" if reply is None else _failure(reply)
        ret = None if reply is None else reply.get("ret")
        expected = sum(len(w["actions"]) for w in mine)
        if reason is None and not (isinstance(ret, list) and len(ret) == expected):
            reason = f"{host} returned {expected} action results in an unexpected shape"
        if reason is not None:
            ret = [dict(a, zone=w["zone"], role=w["role"], ok=False, detail=reason) for w in mine for a in w["actions"]]
        for result in ret:
            done.setdefault(result.get("zone"), []).append(result)
    return [result for w in work for result in done.get(w["zone"], [])]


def _converge_once(cluster, batch):
    """One convergence of a cluster on who holds its VIP now, for the
    transitions in ``batch`` (in the order they came): the holders round,
    then the actions round, then one event.  Its result and the alert to keep.

    The actions follow the holder found, not the events: events of several
    nodes may be handled in any order (an election at start-up, say), and
    the zones must end up as the VIP is, not as the last event said.
    """
    name = cluster["name"]
    last = batch[-1]
    timings = {"transition": last["ts"], "received": last["received"]}
    found, silent = _check(cluster, settle=cluster["advbase"] * cluster["deadratio"] + 3)
    timings["checked"] = time.time()
    report = {
        "cluster": name,
        "vip": cluster["vip"],
        "transition": {k: last[k] for k in TRANSITION_KEYS},
        "transitions": [{k: each[k] for k in TRANSITION_KEYS} for each in batch],
    }
    if len(found) != 1:
        kind = "no-master" if not found else "split-brain"
        _fire(f"ucarp/{name}/alert/{kind}", dict(report, holders=found, silent=silent, timings=timings))
        # No transition may follow (an election that ends while the runner
        # waits for a slow hypervisor, a split healed): watch a while longer,
        # so the alert does not outlive what it says.
        found, silent = _check(cluster, settle=FOLLOW_UP)
        timings["checked"] = time.time()
        if len(found) != 1:
            kind = "no-master" if not found else "split-brain"
            alert = {"kind": kind, "holders": found, "silent": silent, "at": time.time()}
            return {"alert": kind, "holders": found, "silent": silent}, alert
    master = found[0]
    actions = _act(cluster, master)
    timings["actions_done"] = time.time()
    _fire(f"ucarp/{name}/failover/complete", dict(report, master=master, actions=actions, timings=timings))
    return {"complete": master, "actions": actions}, None


TRANSITION_KEYS = ("zone", "gz", "role", "seq", "ts")
FOLLOW_UP = 30  # seconds a convergence that ended in an alert keeps watching for one holder
VIP_ALERTS = ("no-master", "split-brain", "unknown")  # alerts about who holds the VIP


def _converge(name, cluster):
    """Converge the cluster on its VIP once for every transition recorded
    and not yet converged on (``pending`` in its state).

    Runs at most one convergence of a cluster at a time, with at most one
    more queued: a thread that finds one queued leaves its transitions to
    it (it reads ``pending`` when it starts, so it covers them) and returns
    at once.  Three locks, always taken in this order: the queue (held
    from the wait until the queued convergence has read ``pending``), the
    convergence, the state.  The convergence acknowledges each
    transition it covered to its sender once it is done.  The results of
    the convergence this call ran (none: another one covers its transitions).
    """
    queue = _Flock(name, ".queue")
    if not queue.acquire(wait=False):
        return []  # a convergence is queued: it will read this call's transitions
    try:
        with _converging(name):
            with _locked(name):
                batch = list(_load(name)["pending"])
                queue.release()  # from now on a new transition queues the next convergence
            if not batch:
                return []  # the one before covered them
            cluster = _clusters(batch[-1]["gz"]).get(name) or cluster
            result, alert = _converge_once(cluster, batch)
            with _locked(name):
                state = _load(name)
                covered = {(each["key"], each["seq"]) for each in batch}
                state["pending"] = [p for p in state["pending"] if (p["key"], p["seq"]) not in covered]
                state["alert"] = alert
                _save(name, state)
    finally:
        queue.release()
    acks = {}
    for each in batch:
        if each.get("ack"):
            where = (each["gz"], each["ack"])
            acks[where] = max(each["seq"], acks.get(where, 0))
    for (sender, key), seq in sorted(acks.items()):
        _send_ack(sender, key, seq)
    return [result]


def transition(tag=None, data=None):
    """
    Handle one ``ucarp/<cluster>/<role>`` event (the reactor calls this).

    The transition is recorded (the cluster's last transition, the node's
    cursor), then the cluster converges on who holds its VIP.  While a
    convergence of the cluster runs, the next one is queued and covers
    every transition recorded until it starts: a backlog of transitions (a
    cluster's start-up election) converges once or twice, not once per
    event.

    tag
        The event's tag.

    data
        The event's data as the master received it: the sender's minion id
        in ``id`` (checked by the master), the beacon's payload in ``data``.

    Returns the results of the convergence it ran (``complete`` with the
    holder and the actions, or ``alert``), an empty list when another
    convergence covers its transition, or ``rejected`` / ``duplicate``.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.transition tag=ucarp/web/master data='{"id": "gz2", "data": {...}}'
    """
    return _ingest(tag, data, "transition")


def health(tag=None, data=None):
    """
    Handle one ``ucarp/<cluster>/health/<healthy|sick>`` event (the reactor calls this).

    Records the node's health for ``ucarp.status``.  A sick master that
    keeps the VIP because no peer is healthy fires
    ``ucarp/<cluster>/alert/all-unhealthy``; the alert clears when a node is
    healthy again.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.health tag=ucarp/web/health/sick data='{"id": "gz1", "data": {...}}'
    """
    return _ingest(tag, data, "health")


def _ingest(tag, data, kind):
    """Check an event, handle it, and acknowledge it to its sender.

    Handled, repeated and rejected records are all acknowledged: the beacon
    sends a record again only when nothing on the master dealt with it.  A
    transition is acknowledged by the convergence that covers it, once that
    is done.  A handler that fails acknowledges nothing, so the record
    comes again.
    """
    received = time.time()
    sender, item, reason = _check_event(tag, data, kind)
    if reason:
        result = _reject(tag, sender, data, reason)
    elif kind == "transition":
        return _record(sender, item, received, _ack_key(data))
    else:
        result = _handle_health(sender, item, received)
    _ack(sender, data)
    return result


def _ack_key(data):
    """The beacon's cursor to acknowledge a record on (None: it asks for none)."""
    payload = data.get("data") if isinstance(data, dict) else None
    key = payload.get("ack") if isinstance(payload, dict) else None
    return key if isinstance(key, str) and ACK_KEY_RE.match(key) else None


def _ack(sender, data):
    """Acknowledge the event's own record to its sender."""
    payload = data.get("data") if isinstance(data, dict) else None
    key, seq = _ack_key(data), payload.get("seq") if isinstance(payload, dict) else None
    if isinstance(sender, str) and key and isinstance(seq, int) and seq >= 1:
        _send_ack(sender, key, seq)


def _send_ack(sender, key, seq):
    """Tell the sender's beacon that its records up to ``seq`` are dealt with (``ucarp.ack``, no wait)."""
    try:
        _local().cmd_async([sender], "ucarp.ack", [key, seq], tgt_type="list")
    except Exception as exc:  # noqa: BLE001 - without the ack the beacon only sends the record again
        log.warning("ucarp: could not acknowledge %s %s to %s: %s", key, seq, sender, exc)


def _node_key(sender, item, kind):
    return f"{sender}/{item['zone']}/{item['zone_uuid']}" + ("/health" if kind == "health" else "")


def _missed(sender, item, fetch, last):
    """The records of the node between ``last`` and the event's, from the
    zone's own record (what the master missed while it was down)."""
    try:
        missed = _call(sender, fetch, item["zone"], item["cluster"]["name"], since=last)
    except _CallError as exc:
        log.warning("ucarp: could not fill the gap after record %s of %s: %s", last, item["zone"], exc)
        return []
    if not isinstance(missed, list):
        return []
    return [dict(item, **m) for m in missed if isinstance(m, dict) and last < m.get("seq", 0) < item["seq"]]


def _record(sender, item, received, ack):
    """Record a transition (and any the master missed before it) once and in
    order, then converge the cluster.  A repeat changes nothing, unless
    transitions recorded earlier still wait for a convergence (one was cut
    short): then it runs."""
    name = item["cluster"]["name"]
    key = _node_key(sender, item, "transition")
    with _locked(name):
        state = _load(name)
        last = state["cursors"].get(key)
        if last is not None and item["seq"] <= last:
            waiting = bool(state["pending"])
        else:
            waiting = None
            todo = (
                _missed(sender, item, "ucarp.transitions", last) if last is not None and item["seq"] > last + 1 else []
            )
            for each in [*todo, item]:
                record = {k: each[k] for k in ("zone", "role", "seq", "ts")}
                record.update(gz=sender, received=received, key=key, ack=ack)
                state["last"] = {k: record[k] for k in (*TRANSITION_KEYS, "received")}
                state["cursors"][key] = each["seq"]
                state["pending"].append(record)
            _save(name, state)
    if waiting is not None:
        if ack:
            _send_ack(sender, ack, item["seq"])
        if waiting:
            _converge(name, item["cluster"])
        return {"duplicate": item["seq"]}
    return _converge(name, item["cluster"])


def _handle_health(sender, item, received):
    """Handle each health record of a node once and in order.

    A gap in the sequence is filled from the zone's own record (what the
    master missed while it was down), a repeat is ignored.
    """
    name = item["cluster"]["name"]
    key = _node_key(sender, item, "health")
    results = []
    with _locked(name):
        state = _load(name)
        last = state["cursors"].get(key)
        if last is not None and item["seq"] <= last:
            return {"duplicate": item["seq"]}
        todo = (
            _missed(sender, item, "ucarp.health_records", last) if last is not None and item["seq"] > last + 1 else []
        )
        for each in [*todo, item]:
            results.append(_health(dict(each, gz=sender, received=received), state))
            state["cursors"][key] = each["seq"]
            _save(name, state)
    return results


def _health(item, state):
    """Record one health change; raise or clear the all-unhealthy alert."""
    cluster = item["cluster"]
    name = cluster["name"]
    node = {k: item.get(k) for k in ("gz", "state", "action", "detail", "seq", "ts")}
    state.setdefault("health", {})[item["zone"]] = node
    report = {"cluster": name, "vip": cluster["vip"], "zone": item["zone"], "health": state["health"]}
    alert = state.get("alert") or {}
    if item["action"] == "kept-vip":
        holder = {"zone": item["zone"], "gz": item["gz"]}
        state["alert"] = {"kind": "all-unhealthy", "holders": [holder], "at": time.time()}
        _fire(f"ucarp/{name}/alert/all-unhealthy", dict(report, holder=holder, detail=item.get("detail")))
        return {"alert": "all-unhealthy", "holder": holder}
    if alert.get("kind") == "all-unhealthy" and (item["state"] == "healthy" or item["action"] == "stepped-down"):
        state["alert"] = None
    return {"health": dict(node, zone=item["zone"])}


def status(tgt="*", timeout=30):
    """
    Show every UCARP cluster: VIP, master zone and hypervisor, backups (each
    with its zone state, SMF state and health), last transition and alert.

    A cluster with a node on a hypervisor that did not answer lists that
    hypervisor in ``silent``; if no answering node holds the VIP, its alert
    is ``unknown`` (the master may be the silent one), not ``no-master``.

    tgt
        The hypervisors to ask (``*``: every minion; those without the
        formula are skipped).

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.status
        salt-run ucarp.status --out=json
    """
    report = {}
    fleet, silent = _fleet(tgt, timeout)
    hosted = _silent_clusters(silent)
    for name in sorted(set(fleet) | set(hosted)):
        nodes = fleet.get(name, [])
        masters = [n for n in nodes if n.pop("holds_vip")]
        vip = nodes[0]["vip"] if nodes else hosted[name]["vip"]
        vhid = nodes[0]["vhid"] if nodes else hosted[name]["vhid"]
        info = report[name] = {"vip": vip, "vhid": vhid}
        info["master"] = masters[0] if len(masters) == 1 else None
        info["backups"] = [n for n in nodes if n not in masters]
        for node in nodes:
            del node["vip"], node["vhid"]
        if name in hosted:
            info["silent"] = hosted[name]["hosts"]
        state = _load(name) if CLUSTER_RE.match(name) else {}
        info["last_transition"] = state.get("last")
        if not masters and name in hosted:
            # The master may be on a hypervisor that did not answer.
            info["alert"] = {"kind": "unknown", "holders": [], "silent": hosted[name]["hosts"]}
        elif len(masters) != 1:
            info["alert"] = {"kind": "no-master" if not masters else "split-brain", "holders": masters}
        elif (masters[0].get("health") or {}).get("action") == "kept-vip":
            info["alert"] = {"kind": "all-unhealthy", "holders": masters}
        elif (state.get("alert") or {}).get("kind") in VIP_ALERTS and not info.get("silent"):
            # This status has just seen one holder and every node: an alert
            # about who holds the VIP is over, whatever the last reaction saw.
            info["alert"] = None
        else:
            info["alert"] = state.get("alert")
    return report


def _fleet(tgt="*", timeout=30):
    """Every node the hypervisors report, by cluster (``ucarp.status`` on
    each), and the minions that did not answer."""
    replies = _local().cmd(tgt, "ucarp.status", timeout=timeout, full_return=True)
    nodes, silent = {}, []
    for gz, reply in sorted(replies.items()):
        if isinstance(reply, dict) and reply.get("out") == "no_return":
            silent.append(gz)
            continue
        entries = reply.get("ret") if isinstance(reply, dict) else None
        if not isinstance(entries, list):
            continue  # a minion without the formula
        for entry in entries:
            node = {k: entry.get(k) for k in ("zone", "zone_state", "service", "health", "vip", "vhid")}
            node.update(gz=gz, holds_vip=bool(entry.get("holds_vip")))
            nodes.setdefault(entry["cluster"], []).append(node)
    return nodes, silent


def _silent_clusters(silent):
    """The clusters that, by pillar, have a node on a hypervisor that did not
    answer: name -> vip, vhid and those hypervisors."""
    hosted = {}
    for gz in silent:
        for name, cluster in _clusters(gz).items():
            if any(node["host"] == gz for node in cluster["nodes"].values()):
                entry = hosted.setdefault(name, {"vip": cluster["vip"], "vhid": cluster["vhid"], "hosts": []})
                entry["hosts"].append(gz)
    return hosted


# Planned switchover -----------------------------------------------------------


class _Refused(Exception):
    """A switchover that must not start (nothing has been changed)."""


class _Failed(Exception):
    """A switchover that went wrong half-way (what was changed is undone)."""


def _pick(cluster, nodes, master, to):
    """The target node of a switchover, or ``_Refused`` with the reason."""
    members = sorted(cluster["nodes"])
    if to is not None and to not in cluster["nodes"]:
        raise _Refused(f"{to} is not a member of cluster {cluster['name']} (members: {', '.join(members)})")
    by_zone = {n["zone"]: n for n in nodes}

    def unfit(zone):
        node = by_zone.get(zone)
        if node is None:
            return f"the hypervisor of {zone} ({cluster['nodes'][zone]['host']}) did not answer"
        if node["zone_state"] != "running":
            return f"zone {zone} is {node['zone_state']}"
        if node["service"] != "online":
            return f"{cluster['fmri']} in zone {zone} is {node['service']}"
        if cluster.get("health") and (node.get("health") or {}).get("state") != "healthy":
            detail = (node.get("health") or {}).get("detail") or "no health record yet"
            return f"{zone} is unhealthy ({detail})"
        return None

    if to is None:
        fit = [z for z in members if z != master and not unfit(z)]
        if not fit:
            raise _Refused(f"no running, healthy backup to switch to in cluster {cluster['name']}")
        to = min(fit, key=lambda z: (cluster["nodes"][z]["advskew"], z))
    reason = unfit(to)
    if reason:
        raise _Refused(f"cannot switch to {to}: {reason}")
    if cluster["nodes"][master]["advskew"] == 0:
        raise _Refused(
            f"the master {master} runs with advskew 0, so no node can preempt it; give it advskew 1 or more"
            " (the formula's default) and apply the formula"
        )
    if cluster["preempt"]:
        preferred = [z for z, n in cluster["nodes"].items() if n["advskew"] < cluster["nodes"][to]["advskew"]]
        if preferred:
            raise _Refused(
                f"cluster {cluster['name']} has preempt: true and {', '.join(sorted(preferred))} (lower advskew)"
                f" would take the VIP back from {to} at once"
            )
    return to


def _override(cluster, node, mode, refresh=True):
    host = cluster["nodes"][node]["host"]
    try:
        _call(host, "ucarp.override", cluster["name"], node, mode, refresh=refresh)
    except _CallError as exc:
        raise _Failed(f"{mode or 'normal'} restart of {node}: {exc}") from None


def _wait(deadline, test):
    while True:
        found = test()
        if found or time.time() >= deadline:
            return found
        time.sleep(0.2)


def _only_holder(cluster, zone):
    found, silent = _holders(cluster)
    return not silent and [h["zone"] for h in found] == [zone]


def _last_transition(cluster, zone):
    """A node's last recorded transition (None: none, or its hypervisor did not say)."""
    try:
        last = _call(cluster["nodes"][zone]["host"], "ucarp.last_transition", zone, cluster["name"])
    except _CallError as exc:
        log.info("ucarp: no last transition of %s: %s", zone, exc)
        return None
    return last if isinstance(last, dict) else None


def _master_again(cluster, zone, since):
    last = _last_transition(cluster, zone)
    return last is not None and last.get("seq", 0) > since and last.get("role") == "master"


def _hand_over(cluster, master, to):
    """Move the VIP from ``master`` to ``to`` and leave every node's ucarp as pillar says.

    1. ``to`` restarts with advskew 0 and --preempt: at the master's next
       advert it takes the VIP (the master, hearing a faster advert, steps
       down): the VIP moves without the advbase x deadratio of silence an
       unplanned failover waits for.
    2. The other nodes restart to wait longer than usual for a silent
       master; ``to`` restarts in place with its own options, keeping the VIP,
       and is master again before anyone else would take over.
    3. The other nodes restart with their own options.
    """
    others = sorted(z for z in cluster["nodes"] if z != to)
    timings = {"started": time.time()}
    advert = cluster["advbase"] + 1
    _override(cluster, to, "preempt")
    if not _wait(time.time() + 3 * advert + 10, lambda: _only_holder(cluster, to)):
        raise _Failed(f"{to} did not take the VIP from {master}")
    timings["moved"] = time.time()
    for zone in others:
        _override(cluster, zone, "slow")
    since = _last_seq(cluster, to)
    _override(cluster, to, "keep-vip")
    not_again = _Failed(f"{to} restarted with its own options but did not become master again")
    _master_in_place(cluster, to, others, since, "switchover", not_again)
    timings["done"] = time.time()
    return timings


def _last_seq(cluster, zone):
    """The sequence number of a node's last recorded transition (0: none)."""
    last = _last_transition(cluster, zone)
    return last.get("seq", 0) if last is not None else 0


def _master_in_place(cluster, holder, others, since, step, not_again):
    """The end of a switchover or rollout: ``holder``, restarted in place
    keeping the VIP (``keep-vip``), is master again (a transition after
    ``since``) before any backup would take over, else ``not_again`` is
    raised; then ``others`` go back to their own options, and ``holder``
    alone holds the VIP. The time it was master again."""
    advert = cluster["advbase"] + 1
    settle = time.time() + cluster["advbase"] * cluster["deadratio"] + advert + 10
    if not _wait(settle, lambda: _master_again(cluster, holder, since)):
        raise not_again
    again = time.time()
    for zone in others:
        _override(cluster, zone, None)
    _override(cluster, holder, None, refresh=False)  # its ucarp runs with its own options now
    if not _wait(time.time() + 3 * advert + 10, lambda: _only_holder(cluster, holder)):
        raise _Failed(f"{holder} does not hold the VIP alone after the {step}")
    return again


def _undo(cluster):
    """Best effort after a failed switchover: every node back to its own options.

    A node holding the VIP keeps running (its override is simply dropped);
    the others restart normally.
    """
    found, _silent = _holders(cluster)
    holding = {h["zone"] for h in found}
    for zone, node in sorted(cluster["nodes"].items()):
        try:
            _call(node["host"], "ucarp.override", cluster["name"], zone, None, refresh=zone not in holding)
        except _CallError as exc:
            log.warning("ucarp: could not restore %s after a failed switchover: %s", zone, exc)


def switchover(name, to=None, tgt="*"):
    """
    Move a cluster's VIP on purpose (maintenance, upgrades) and verify it.

    The target restarts with ``--preempt`` and advskew 0 and takes the VIP at
    the master's next advert, so clients see no gap beyond their ARP update;
    then every node runs its own options again and the old master is a
    healthy backup.  Refused, with nothing changed, when the target is not a
    member, its zone or ucarp instance is not running, it is unhealthy, the
    master runs advskew 0 (nothing can preempt it) or ``preempt: true`` would
    move the VIP straight back.

    name
        The cluster's name in pillar.

    to
        The zone to move the VIP to (default: the running, healthy backup
        with the lowest advskew).

    tgt
        The hypervisors to ask about the cluster (default every minion).

    Fires ``ucarp/<cluster>/switchover/complete`` (or ``.../failed``); a
    refusal or failure returns ``result: False`` and makes ``salt-run`` exit 1.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.switchover web
        salt-run ucarp.switchover web to=web-b
    """
    started = time.time()
    report = {"cluster": name, "to": to}
    try:
        if not isinstance(name, str) or not CLUSTER_RE.match(name):
            raise _Refused(f"{name!r} is not a cluster name")
        nodes = _fleet(tgt)[0].get(name)
        if not nodes:
            raise _Refused(f"no hypervisor reports cluster {name}")
        cluster = _clusters(nodes[0]["gz"]).get(name)
        if cluster is None:
            raise _Refused(f"cluster {name} is not in the pillar of {nodes[0]['gz']}")
        masters = sorted(n["zone"] for n in nodes if n["holds_vip"])
        if len(masters) != 1:
            raise _Refused(f"cluster {name} needs exactly one master to switch over (holders: {masters or 'none'})")
        report["from"] = master = masters[0]
        if to == master:
            return dict(report, result=True, comment=f"{master} already holds {cluster['vip']}: nothing to do")
        report["to"] = to = _pick(cluster, nodes, master, to)
    except _Refused as exc:
        __context__["retcode"] = 1
        log.warning("ucarp: switchover of %s refused: %s", name, exc)
        return dict(report, result=False, comment=f"refused: {exc}", retcode=1)
    with _converging(name), _locked(name):  # no reaction acts meanwhile
        try:
            timings = _hand_over(cluster, master, to)
        except _Failed as exc:
            _undo(cluster)
            __context__["retcode"] = 1
            _fire(f"ucarp/{name}/switchover/failed", dict(report, reason=str(exc)))
            comment = f"failed: {exc}; every node not holding the VIP was restarted with its own options"
            return dict(report, result=False, comment=comment, retcode=1)
    timings = {
        "handover_s": round(timings["moved"] - timings["started"], 3),
        "total_s": round(timings["done"] - started, 3),
    }
    comment = f"{to} holds {cluster['vip']}; {master} is a backup"
    _fire(f"ucarp/{name}/switchover/complete", dict(report, vip=cluster["vip"], timings=timings))
    return dict(report, result=True, comment=comment, timings=timings)


# Rolling configuration changes -------------------------------------------------


def _apply_files(cluster, hosts):
    """Write the cluster's files on its hypervisors (``ucarp.config`` for this
    cluster alone, past the identity guard), restarting nothing."""
    reply = _cmd(hosts, "state.apply", ["ucarp.config"], {"pillar": {"ucarp_rollout": cluster["name"]}})
    failed = {}
    for host in hosts:
        ret = (reply.get(host) or {}).get("ret")
        if not isinstance(ret, dict):
            failed[host] = str(ret)
            continue
        bad = [
            f"{r.get('__id__')}: {r.get('comment')}"
            for r in ret.values()
            if isinstance(r, dict) and not r.get("result")
        ]
        if bad:
            failed[host] = "; ".join(bad)
    return failed


def _roll(cluster, master):
    """The cluster's nodes on their new pillar, one step at a time, with the
    VIP kept by ``master`` throughout.

    1. every node's files are written, nothing restarted;
    2. the backups restart on them waiting longer than usual for a silent
       master (a backup on a new password cannot hear the master yet, and
       must not take the VIP meanwhile);
    3. the master restarts in place on them keeping the VIP (killed without
       its down hook, started without it) and is master again after
       advbase x deadratio, before any backup would take over; the VIP
       answers all along;
    4. the backups restart with their own options, and hear the master.
    """
    backups = sorted(z for z in cluster["nodes"] if z != master)
    hosts = sorted({n["host"] for n in cluster["nodes"].values()})
    timings = {"started": time.time()}
    failed = _apply_files(cluster, hosts)
    if failed:
        raise _Refused("writing the new files failed, nothing was restarted: " + "; ".join(
            f"{h}: {why}" for h, why in sorted(failed.items())))  # fmt: skip
    timings["written"] = time.time()
    since = _last_seq(cluster, master)
    restarted = []
    try:
        for zone in backups:
            _override(cluster, zone, "slow")
            restarted.append(zone)
        _override(cluster, master, "keep-vip")
    except _Failed as exc:
        raise _Stranded(str(exc), restarted) from None
    not_again = _Stranded(f"{master} restarted on the new settings but did not become master again", backups)
    timings["master"] = _master_in_place(cluster, master, backups, since, "rollout", not_again)
    timings["done"] = time.time()
    return timings


class _Stranded(_Failed):
    """A rollout stopped with some backups already on the new settings."""

    def __init__(self, reason, backups):
        super().__init__(reason)
        self.backups = backups


def _park(cluster, backups):
    """After a rollout stopped half-way: the backups already on the new
    settings cannot hear the master, so their instances are disabled
    (their files keep the new settings): the master holds the VIP alone."""
    parked = []
    for zone in backups:
        try:
            _call(cluster["nodes"][zone]["host"], "zlogin.svc_disable", zone, cluster["fmri"])
        except _CallError as exc:
            log.warning("ucarp: could not disable %s in %s after a stopped rollout: %s", cluster["fmri"], zone, exc)
        else:
            parked.append(zone)
    return parked


def rollout(name, tgt="*"):
    """
    Apply a running cluster's pillar to every node in a safe order, with no
    gap for clients and never two masters.

    What a highstate will not change on a running cluster, the password,
    goes this way (a new VIP or VHID is a new cluster, see the README); so
    can anything else, timing, skews, preempt, health checks. The master
    keeps the VIP all along: the backups restart first on the new files,
    told to wait longer than usual for a silent master, the master restarts
    in place keeping the VIP and is master again on the new settings, then
    the backups restart with their own options and hear it.

    Refused, with nothing changed, when a hypervisor of the cluster does
    not answer, a node's zone or instance does not run, a node is sick (with
    health checks), the cluster has no single master, or its VIP or VHID
    would change (``ucarp.identity_kept``
    refuses to write such files). A rollout that cannot
    complete stops with the master holding the VIP alone: backups it had
    already moved to the new settings are disabled, and the comment says so.

    name
        The cluster's name in pillar.

    tgt
        The hypervisors to ask about the cluster (default every minion).

    Fires ``ucarp/<cluster>/rollout/complete`` (or ``.../failed``); a refusal
    or failure returns ``result: False`` and makes ``salt-run`` exit 1.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.rollout web
    """
    started = time.time()
    report = {"cluster": name}
    try:
        if not isinstance(name, str) or not CLUSTER_RE.match(name):
            raise _Refused(f"{name!r} is not a cluster name")
        nodes, silent = _fleet(tgt)
        nodes = nodes.get(name) or []
        if not nodes:
            raise _Refused(f"no hypervisor reports cluster {name}")
        cluster = _clusters(nodes[0]["gz"]).get(name)
        if cluster is None:
            raise _Refused(f"cluster {name} is not in the pillar of {nodes[0]['gz']}")
        by_zone = {n["zone"]: n for n in nodes}
        for zone, node in sorted(cluster["nodes"].items()):
            seen = by_zone.get(zone)
            if seen is None:
                why = "did not answer" if node["host"] in silent else "does not report it"
                raise _Refused(f"the hypervisor of {zone} ({node['host']}) {why}")
            if seen["zone_state"] != "running" or seen["service"] != "online":
                raise _Refused(f"zone {zone} is {seen['zone_state']}, its instance {seen['service']}")
            health = seen.get("health")
            if cluster.get("health") and (health or {}).get("state") != "healthy":
                why = f"sick ({health.get('detail')})" if health else "not known to be healthy (no health record yet)"
                raise _Refused(f"{zone} is {why}: fix it first (new checks apply in place with a highstate)")
        masters = sorted(n["zone"] for n in nodes if n["holds_vip"])
        if len(masters) != 1:
            raise _Refused(f"cluster {name} needs exactly one master to roll out (holders: {masters or 'none'})")
        report["master"] = master = masters[0]
        with _converging(name), _locked(name):  # no reaction acts meanwhile
            timings = _roll(cluster, master)
    except _Refused as exc:
        __context__["retcode"] = 1
        log.warning("ucarp: rollout of %s refused: %s", name, exc)
        return dict(report, result=False, comment=f"refused: {exc}", retcode=1)
    except _Failed as exc:
        parked = _park(cluster, exc.backups) if isinstance(exc, _Stranded) else []
        __context__["retcode"] = 1
        reason = str(exc) + (f"; {', '.join(parked)} (already on the new settings) disabled" if parked else "")
        _fire(f"ucarp/{name}/rollout/failed", dict(report, reason=reason))
        return dict(report, result=False, comment=f"failed: {reason}; {master} holds the VIP", retcode=1)
    timings = {
        "master_back_s": round(timings["master"] - timings["written"], 3),
        "total_s": round(timings["done"] - started, 3),
    }
    _fire(f"ucarp/{name}/rollout/complete", dict(report, vip=cluster["vip"], timings=timings))
    return dict(
        report,
        result=True,
        comment=f"every node of {name} runs its new settings; {master} holds {cluster['vip']}",
        timings=timings,
    )
