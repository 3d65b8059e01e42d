"""
React to UCARP VIP transitions and report the fleet's VIPs (on the master).

The hypervisors' ``ucarp`` beacon sends each transition as the event
``ucarp/<cluster>/<role>``; the reactor hands it to ``ucarp.transition``,
which:

- trusts only what the hypervisor that hosts the zone confirms: the event's
  fields are checked (types, sizes; the cluster, zone, VIP and VHID against
  the claimed sender's pillar), then the record is taken only if that
  hypervisor returns it in its own answer to the first holders round (an
  event sent as a list may carry any minion id).  Anything else changes
  nothing and fires ``ucarp/<cluster>/alert/rejected``;
- processes each node's records once and in order, by the shared model's
  cursor (a record file that went back starts a new epoch: its new records
  are taken, its old ones never again; a gap is filled from the same
  answer), then acknowledges them to their hypervisor (``ucarp.ack``): the
  beacon sends a record again until a reaction has acknowledged it, so an
  event the reactor missed (it was still starting after a master restart)
  is not lost;
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
hypervisor, backups, last transition, alert; ``salt-run ucarp.history``
what happened.  The runner's state, the pillar models and the history live
in Salt's own cache (``salt.cache``).

:depends: the formula's ``ucarp_model`` util, synced to the master
    (``salt-run saltutil.sync_all``), or the formula pip-installed there
"""

import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time

import salt.cache
import salt.client
import salt.utils.event
import salt.utils.minions
import salt.utils.verify
import salt.version

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import ucarp_model as _packaged_model
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_model = None

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
# Seconds before LocalClient asks a silent minion whether it still runs the
# job (saltutil.find_job): a long job keeps it waiting, a job the minion
# dropped (it cannot decrypt it just after a master restart) is sent again
# within REPLY_WAIT instead of waiting all of it out.
CALL_TIMEOUT = 5
REPLY_WAIT = 60  # how long to keep asking a hypervisor that does not answer


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


# The runner's state (cursors, last transition, alert, pending transitions,
# health) and its history live in Salt's own cache (``salt.cache``: the
# master's configured ``cache`` backend, ``localfs`` under the cachedir by
# default), so one backend carries all of it. The locks stay local flocks.
STATE_BANK = "ucarp/clusters"
MODEL_BANK = "ucarp/models"
HISTORY_BANK = "ucarp/history"
REJECTED_BANK = "ucarp/rejected"
HISTORY_SIZE = 1000  # entries kept by default; master config: ucarp: {history_size: N}
_CACHES = {}


def _cache():
    """This process's ``salt.cache`` of the master (made once: it loads the backend)."""
    found = _CACHES.get(os.getpid())
    if found is None:
        found = _CACHES[os.getpid()] = salt.cache.factory(__opts__)
    return found


def _fetch(bank, key):
    found = _cache().fetch(bank, key)
    return found if isinstance(found, dict) else {}


def _load(name):
    state = _fetch(STATE_BANK, name)
    for key, empty in (("cursors", {}), ("last", None), ("alert", None), ("pending", [])):
        state.setdefault(key, empty)
    return state


def _save(name, state):
    _cache().store(STATE_BANK, name, state)


def _history_size():
    settings = __opts__.get("ucarp") or {}
    size = settings.get("history_size", HISTORY_SIZE) if isinstance(settings, dict) else HISTORY_SIZE
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else HISTORY_SIZE


def _keep(kind, cluster, **entry):
    """Append an entry to the history (``salt-run ucarp.history``): at most
    ``history_size`` entries, the oldest dropped first."""
    entry = dict(entry, at=round(time.time(), 3), kind=kind, cluster=cluster)
    with _Flock("history"):
        meta = _fetch(HISTORY_BANK, "meta")
        first, after = meta.get("first", 1), meta.get("next", 1)
        _cache().store(HISTORY_BANK, f"{after:012d}", entry)
        after += 1
        while after - first > _history_size():
            _cache().flush(HISTORY_BANK, f"{first:012d}")
            first += 1
        _cache().store(HISTORY_BANK, "meta", {"first": first, "next": after})


def _entries():
    """Every history entry, oldest first."""
    meta = _fetch(HISTORY_BANK, "meta")
    found = []
    for number in range(meta.get("first", 1), meta.get("next", 1)):
        entry = _fetch(HISTORY_BANK, f"{number:012d}")
        if entry:
            found.append(entry)
    return found


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


HISTORY_KINDS = {"failover": "reaction", "alert": "alert", "switchover": "switchover", "rollout": "rollout"}


def _fire(tag, data):
    """Fire ``tag`` on the master's bus and keep it in the history."""
    _publish(tag, data)
    parts = tag.split("/")
    _keep(HISTORY_KINDS.get(parts[2], parts[2]), parts[1], tag=tag, data=data)


def _publish(tag, data):
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
_MODELS = {}  # minion id -> (fingerprint, time compiled, clusters); this loader's copy of the master's cache


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


def _model_key(minion):
    return hashlib.sha256(minion.encode()).hexdigest()[:32]


def _cached_clusters(minion, fingerprint):
    """The clusters compiled for ``minion`` with this fingerprint, from
    memory or the master's cache (shared with ``salt-run`` and with the
    reactor's next loader), or None."""
    ttl = EXT_PILLAR_TTL if __opts__.get("ext_pillar") else None

    def good(found):
        return found is not None and found[0] == fingerprint and (ttl is None or time.time() - found[1] <= ttl)

    found = _MODELS.get(minion)
    if not good(found):
        saved = _fetch(MODEL_BANK, _model_key(minion))
        try:
            found = (saved["fingerprint"], saved["at"], saved["clusters"]) if saved.get("minion") == minion else None
        except (KeyError, TypeError):
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
    clusters = json.loads(json.dumps(clusters))  # as the cache gives it back
    at = time.time()
    _MODELS[minion] = (fingerprint, at, clusters)
    _cache().store(MODEL_BANK, _model_key(minion), {"minion": minion, "fingerprint": fingerprint, "at": at,
                                                    "clusters": clusters})  # fmt: skip
    log.debug("ucarp: compiled the pillar of %s", minion)
    return clusters


# The reaction -------------------------------------------------------------------

MAX_TEXT = 500  # longest detail or value an event may carry where text is expected
MAX_PENDING = 256  # transitions of a cluster waiting to be confirmed; more are refused
REJECT_WINDOW, REJECT_BURST = 60, 100  # at most this many alert/rejected per cluster and sender per window
UNSIGNED = (
    "an event in a list carries the id its sender wrote, and Salt does not say who sent it; only a "
    "single event's id is authenticated"
)


def _short(value, size=60):
    """``repr(value)``, cut short: a hostile event's huge field is never echoed whole."""
    text = repr(value)
    return text if len(text) <= size else text[:size] + "..."


def _count(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_event(tag, data, kind="transition"):
    """The claimed sender and the checked record of an event, or a reason to reject it.

    ``kind``: ``transition`` (``ucarp/<cluster>/<role>``) or ``health``
    (``ucarp/<cluster>/health/<state>``).  Every field is checked for type,
    size and against the claimed sender's pillar; the record comes back
    with the cluster's model as ``cluster`` and the pillar's host as
    ``host``.  What the event claims is confirmed later, by that host.
    """
    if not isinstance(data, dict):
        return None, None, "the event's data is not a mapping"
    sender, payload = data.get("id"), data.get("data")
    if not isinstance(sender, str) or not 0 < len(sender) <= 255:
        return None, None, f"malformed sender id {_short(sender)}"
    if not _accepted(sender):
        return None, None, f"{_short(sender)} is not a minion whose key this master has accepted"
    if not isinstance(payload, dict):
        return sender, None, "the event has no data"
    name, zone = payload.get("cluster"), payload.get("zone")
    if not isinstance(name, str) or not CLUSTER_RE.match(name):
        return sender, None, f"malformed cluster name {_short(name)}"
    if payload.get("kind", kind) != kind:
        return sender, None, f"a {_short(payload.get('kind'))} record sent as a {kind} event"
    fields = _util("record_fields")(kind)
    if kind == "transition":
        good = payload.get("role") in ("master", "backup")
        good = good and _count(payload.get("vhid"), 1, 255) and isinstance(payload.get("interface", ""), str)
    else:
        detail = payload.get("detail")
        good = payload.get("state") in ("healthy", "sick") and payload.get("action") in _util("health_actions")()
        good = good and (detail is None or (isinstance(detail, str) and len(detail) <= MAX_TEXT))
    if not good:
        return sender, None, f"malformed {'role or VHID' if kind == 'transition' else 'health state, action or detail'}"
    if tag != _util("record_tag")(kind, name, payload):
        return sender, None, f"the tag {_short(tag)} does not match the data"
    if not _count(payload.get("seq"), 1, 2**53) or not _count(payload.get("ts"), 0, 2**40):
        return sender, None, f"malformed sequence number or time ({_short(payload.get('seq'))})"
    epoch = payload.get("epoch", "")
    if not isinstance(epoch, str) or not (epoch == "" or _util("cursor")({"epoch": epoch, "seq": 0})):
        return sender, None, f"malformed epoch {_short(epoch)}"
    uuid = payload.get("zone_uuid")
    if not _util("is_uuid")(uuid):
        return sender, None, f"malformed zone UUID {_short(uuid)}"
    if not _util("is_alias")(zone):
        return sender, None, f"malformed zone {_short(zone)}"
    clusters = _clusters(sender)
    if name not in clusters:
        return sender, None, f"no cluster {name} in the pillar of {sender}"
    node = clusters[name]["nodes"].get(zone)
    if node is None:
        return sender, None, f"zone {zone} is not a node of cluster {name} in pillar"
    if node["host"] != sender:
        return sender, None, f"zone {zone} of cluster {name} is hosted by {node['host']}, not {sender}"
    if payload.get("vip") != clusters[name]["vip"] or payload.get("vhid") != clusters[name]["vhid"]:
        return sender, None, "the VIP or VHID does not match pillar"
    item = {k: payload.get(k) for k in fields}
    item.update(kind=kind, zone=zone, uuid=uuid, epoch=epoch, seq=payload["seq"], ts=payload["ts"], host=sender)
    item.update(key=_util("record_key")(uuid, name, kind), cluster=clusters[name])
    return sender, item, None


def _accepted(minion):
    """Whether ``minion`` is a valid id whose key the master has accepted: no
    pillar is compiled for an id that an event merely names."""
    if not salt.utils.verify.valid_id(__opts__, minion):
        return False
    return os.path.isfile(os.path.join(__opts__["pki_dir"], "minions", minion))


def _reject(tag, sender, name, reason, actual=None):
    """Fire ``ucarp/<cluster>/alert/rejected`` (at most ``REJECT_BURST`` per
    cluster, claimed sender and ``REJECT_WINDOW`` seconds: a flood of bad
    events is counted, and the next alert says how many were not fired).
    The claimed senders are accepted minions, so the alerts of a fleet are
    bounded too."""
    safe = name if isinstance(name, str) and CLUSTER_RE.match(name) else "unknown"
    log.warning("ucarp: rejected %s from %s: %s", _short(tag, 200), sender, reason)
    who = hashlib.sha256(str(sender).encode()).hexdigest()[:16]
    with _Flock(safe, ".rejected"):
        window = _fetch(REJECTED_BANK, f"{safe}.{who}")
        now = time.time()
        if now - window.get("start", 0) > REJECT_WINDOW:
            window = {"start": now, "fired": 0, "suppressed": window.get("suppressed", 0)}
        fire = window["fired"] < REJECT_BURST
        if fire:
            suppressed, window["suppressed"] = window.get("suppressed", 0), 0
            window["fired"] += 1
        else:
            window["suppressed"] = window.get("suppressed", 0) + 1
        _cache().store(REJECTED_BANK, f"{safe}.{who}", window)
    if fire:
        alert = {"sender": sender, "claimed": sender, "actual": actual, "tag": _short(tag, 200), "reason": reason}
        if suppressed:
            alert["suppressed"] = suppressed
        _fire(f"ucarp/{safe}/alert/rejected", alert)
    return {"rejected": reason}


class _Rounds:
    """Holders rounds to the same hypervisors, merged while one is out.

    A round for a set of hypervisors with none out to them goes at once,
    as one ``ucarp.holders``.  Rounds asked for the same set while one is
    out wait for it and then go together, as one ``ucarp.holders_many``:
    the reactions of many clusters at once (a start-up election, a
    hypervisor that died with many masters) cost one job per hypervisor
    per round, not one per cluster, and a hypervisor that does not answer
    delays only the rounds that ask it.  Each round carries the
    acknowledgements owed to its hypervisors (``_carry``).  The first
    waiting round leads the next one: no thread serves another's after
    its own is answered.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.waiting = {}  # hosts -> the rounds asked while one is out
        self.out = set()  # hosts with a round out

    def ask(self, hosts, name, after):
        """The replies of ``hosts`` to the round for cluster ``name``: ``{host: full return}``."""
        mine = {"name": name, "after": after, "done": threading.Event(), "batch": None}
        with self.lock:
            if hosts in self.out:
                self.waiting.setdefault(hosts, []).append(mine)
            else:
                self.out.add(hosts)
                mine["batch"] = [mine]
        if mine["batch"] is None:
            mine["done"].wait()
        if mine["batch"] is not None:  # this one leads a round: its own, with those waiting
            try:
                self.send(hosts, mine["batch"])
            finally:
                with self.lock:
                    after_us = self.waiting.pop(hosts, [])
                    if after_us:
                        after_us[0]["batch"] = after_us
                        after_us[0]["done"].set()
                    else:
                        self.out.discard(hosts)
        if "error" in mine:
            raise mine["error"]
        return mine["replies"]

    @staticmethod
    def send(hosts, batch):
        """One round for ``batch`` (each request's ``replies`` or ``error`` set, and woken)."""
        acks = {}
        try:
            acks, keep = _carry(hosts)  # what reactions owe these hosts rides along
            kwarg = {"acks": acks} if acks else {}
            if len(batch) == 1:
                (one,) = batch
                if one["after"] is not None:
                    kwarg["after"] = one["after"]
                replies = _cmd(list(hosts), "ucarp.holders", [one["name"]], kwarg or None)
                one["replies"] = replies
            else:
                kwarg["asks"] = [{"cluster": r["name"], "after": r["after"]} for r in batch]
                replies = _cmd(list(hosts), "ucarp.holders_many", [], kwarg)
                for n, request in enumerate(batch):
                    request["replies"] = {h: _one_of(reply, n, len(batch), h) for h, reply in replies.items()}
            for host in acks:
                if host not in replies or _failure(replies[host]) is not None:
                    keep(host)
        except Exception as exc:  # noqa: BLE001 - each waiting reaction gets it as from its own round
            for host in acks:
                keep(host)
            for request in batch:
                request["error"] = exc
        finally:
            for request in batch:
                request["done"].set()


def _one_of(reply, n, count, host):
    """The ``n``-th answer of a ``ucarp.holders_many`` reply, as a full return of ``ucarp.holders``."""
    if _failure(reply) is not None:
        return reply
    ret = reply.get("ret")
    if not (isinstance(ret, list) and len(ret) == count and isinstance(ret[n], dict)):
        return {"ret": f"{host} returned {count} answers in an unexpected shape", "retcode": 1}
    if "error" in ret[n]:
        return {"ret": str(ret[n]["error"]), "retcode": 1}
    return {"ret": ret[n].get("answer"), "retcode": 0}


_ROUNDS = _Rounds()


def _holders(cluster, after=None):
    """The zones holding the VIP, the hypervisors that did not say (no
    answer, or an error instead of the answer), and, with ``after``
    (``{zone: cursor}``), each zone's records after its cursor as its own
    hypervisor returned them (``{zone: {"uuid", "records", "host"}}``):
    one round to all the cluster's hypervisors at once (``_Rounds``: one
    ``ucarp.holders``, or one ``ucarp.holders_many`` with the other
    clusters asking the same hypervisors meanwhile)."""
    hosts = sorted({node["host"] for node in cluster["nodes"].values()})
    replies = _ROUNDS.ask(tuple(hosts), cluster["name"], after)
    found, said, records = [], set(), {}
    for host, reply in replies.items():
        ret = reply.get("ret")
        if after is not None and _failure(reply) is not None and reply.get("out") != "no_return":
            # It answered, with an error instead (its pillar has no such cluster yet, say).
            for zone in after:
                if cluster["nodes"].get(zone, {}).get("host") == host:
                    records[zone] = {"error": _short(_failure(reply), 200), "host": host}
        if after is not None and _failure(reply) is None and isinstance(ret, dict):
            for zone, got in (ret.get("records") or {}).items():
                # Only what the hypervisor that hosts the zone says about it counts.
                if cluster["nodes"].get(zone, {}).get("host") == host and isinstance(got, dict):
                    records[zone] = dict(got, host=host)
            ret = ret.get("holders")
        if _failure(reply) is None and isinstance(ret, dict):
            said.add(host)
            found += [{"zone": zone, "gz": host} for zone, held in ret.items() if held is True]
    return sorted(found, key=lambda h: h["zone"]), sorted(set(hosts) - said), records


def _claims(name):
    """The transitions claimed for the cluster and not yet confirmed, by
    identity (the runner's own state: no process, no job)."""
    return {_ident(p): p for p in _load(name)["pending"]}


def _check(cluster, settle, first=None, take=None, known=None):
    """Who holds the VIP once it settles, and the hypervisors that never
    answered: the holders round (``first``: its answer already at hand),
    again only while there is not exactly one holder or a hypervisor is
    silent (bounded: ``settle`` seconds).

    The VIP moves with a transition, which a node's hook records once its
    address is up or down: while it settles, the round is asked again as
    soon as a new transition of the cluster is claimed, and otherwise every
    ``RECHECK`` seconds (a zone that dies records nothing); a claim that
    cannot leave one holder (``_may_settle``) waits for the next round.
    With ``take``,
    that round is ``take(claims)``: it also confirms the new claims, so the
    convergence covers them and none is left for another. ``known``: the
    claims the convergence has already read (by default every claim there
    is now); any other is new, also one claimed while its first round ran."""
    name = cluster["name"]
    deadline = time.time() + settle
    found, silent = first if first is not None else _holders(cluster)[:2]
    asked, claimed = time.time(), set(_claims(name)) if known is None else set(known)
    while (len(found) != 1 or silent) and time.time() < deadline:
        time.sleep(WATCH)
        claims = _claims(name)
        new = [item for ident, item in claims.items() if ident not in claimed]
        if new and not _may_settle(found, silent, new) and time.time() - asked < RECHECK:
            continue  # confirmed with the next round, which this claim cannot hasten
        if new and take is not None:
            found, silent = take(new)
        elif new or time.time() - asked >= RECHECK:
            found, silent, _ = _holders(cluster)
        else:
            continue
        asked, claimed = time.time(), set(claims)
    return found, silent


def _may_settle(found, silent, claims):
    """Whether the claimed transitions may leave the VIP with one holder
    where the last round found ``found``: with none, only a zone becoming
    master can; with several, only one becoming backup (a second node's
    backup record at start-up, say, changes nothing while no zone holds
    the VIP).  Any claim may, while a hypervisor has not answered."""
    if silent:
        return True
    wanted = "master" if not found else "backup"
    return any(c.get("role") == wanted for c in claims)


RECHECK = 2.0  # seconds between holders rounds while the VIP settles and no transition comes
WATCH = 0.1  # how often a settling convergence looks for a newly claimed transition


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


def _same(a, b):
    return _record_id(a) == _record_id(b)


def _well_formed(kind, record):
    """A record as a hypervisor returned it, if it has the shape ``ucarp.records`` gives."""
    if (
        not isinstance(record, dict)
        or not _count(record.get("seq"), 1, 2**53)
        or not _count(record.get("ts"), 0, 2**40)
    ):
        return False
    epoch = record.get("epoch", "")
    return isinstance(epoch, str) and (epoch == "" or _util("cursor")({"epoch": epoch, "seq": 0}) is not None)


def _confirm(kind, items, cursor, answer, silent):
    """What the hypervisor's own answer (``answer``: ``{"uuid", "records",
    "host"}`` from an authenticated return, or None) confirms of the records
    ``items`` (one node's, as events claimed them).

    Returns the records to take (the hypervisor's, after ``cursor``: with
    no cursor yet, from the first one an event claims), the items it did
    not confirm with the reason, and the items to keep for later (their
    hypervisor did not answer).
    """
    head = items[0]
    if answer is None:
        if head["host"] in silent:
            return [], [], items
        return [], [(i, f"{head['host']} returned no records of {head['zone']}") for i in items], []
    if "error" in answer:
        return [], [(i, f"{head['host']} could not confirm it: {answer['error']}") for i in items], []
    if answer.get("uuid") != head["uuid"]:
        why = f"{head['zone']} on {head['host']} is the zone {_short(answer.get('uuid'))}, not {head['uuid']}"
        return [], [(i, why) for i in items], []
    got = [r for r in answer.get("records") or [] if _well_formed(kind, r)]
    if cursor is None:
        starts = [n for n, r in enumerate(got) if any(_same(r, i) for i in items)]
        got = got[starts[0] :] if starts else []
    fields = ("ts", *_util("record_fields")(kind))
    rejected = []
    for item in items:
        match = next((r for r in got if _same(r, item)), None)
        if match is None:
            rejected.append((item, f"{head['host']} has no record {item['seq']} of {head['zone']}: {UNSIGNED}"))
        elif any(match.get(f) != item.get(f) for f in fields):
            rejected.append((item, f"record {item['seq']} of {head['zone']} is not what {head['host']} recorded"))
    return got, rejected, []


def _by_key(items):
    grouped = {}
    for item in items:
        grouped.setdefault(item["key"], []).append(item)
    return grouped


def _take(state, kind, claimed, records):
    """Take a node's confirmed ``records`` (in order): advance its cursor,
    keep each in the history.  ``claimed``: the node's items, as events
    claimed them (when each was received).  The records as the reaction
    reports them."""
    head = claimed[0]
    name = head["cluster"]["name"]
    received = {_record_id(i): i["received"] for i in claimed}
    # A record no event claimed (the master missed it) counts as received with the next one that came.
    when, later = {}, max(received.values())
    for record in reversed(records):
        later = when[_record_id(record)] = received.get(_record_id(record), later)
    taken = []
    for record in records:
        entry = {k: record.get(k) for k in ("epoch", "seq", "ts", *_util("record_fields")(kind))}
        entry.update(zone=head["zone"], gz=head["host"], key=head["key"], received=when[_record_id(record)])
        state["cursors"][head["key"]] = _util("advance")(state["cursors"].get(head["key"]), record)
        if kind == "transition" and entry["received"] >= (state.get("last") or {}).get("received", 0):
            state["last"] = {k: entry[k] for k in (*TRANSITION_KEYS, "received")}
        _keep(kind, name, record=entry)
        taken.append(entry)
    return taken


def _converge_once(cluster, batch, first=None, take=None, known=None):
    """One convergence of a cluster on who holds its VIP now, for the
    confirmed transitions in ``batch`` (in the order they came): the
    holders round (``first``: its answer already at hand), then the actions
    round, then one event.  Its result and the alert to keep.

    The actions follow the holder found, not the events: events of several
    nodes may be handled in any order (an election at start-up, say), and
    the zones must end up as the VIP is, not as the last event said.
    While the VIP settles, ``take`` confirms the transitions claimed
    meanwhile (an election's next ones) and adds them to ``batch``: one
    convergence covers them all.
    """
    name = cluster["name"]
    timings = {"transition": batch[-1]["ts"], "received": batch[-1]["received"]}
    settle = cluster["advbase"] * cluster["deadratio"] + 3
    found, silent = _check(cluster, settle=settle, first=first, take=take, known=known)
    timings["checked"] = time.time()
    last = batch[-1]
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
        found, silent = _check(cluster, settle=FOLLOW_UP, take=take)
        timings["checked"] = time.time()
        report["transitions"] = [{k: each[k] for k in TRANSITION_KEYS} for each in batch]
        if len(found) != 1:
            kind = "no-master" if not found else "split-brain"
            alert = {"kind": kind, "holders": found, "silent": silent, "at": time.time()}
            return {"alert": kind, "holders": found, "silent": silent}, alert
    master = found[0]
    actions = _act(cluster, master)
    timings["actions_done"] = time.time()
    _fire(f"ucarp/{name}/failover/complete", dict(report, master=master, actions=actions, timings=timings))
    return {"complete": master, "actions": actions}, None


TRANSITION_KEYS = ("zone", "gz", "role", "epoch", "seq", "ts")
FOLLOW_UP = 30  # seconds a convergence that ended in an alert keeps watching for one holder
VIP_ALERTS = ("no-master", "split-brain", "unknown")  # alerts about who holds the VIP


def _ident(item):
    return (item["key"], *_record_id(item))


def _drop_covered(name, state, claims):
    """Drop from ``pending`` the ``claims`` an earlier round has already
    confirmed (it took every record after the cursor): they are done, not
    to be confirmed again. Call with the state lock held. Those dropped."""
    done = [c for c in claims if _util("covers")(state["cursors"].get(c["key"]), c)]
    if done:
        state["pending"] = [p for p in state["pending"] if p not in done]
        _save(name, state)
    return done


def _confirm_claims(cluster, batch, cursors):
    """One holders round that also confirms the claimed transitions
    ``batch`` against each node's ``cursors``: its hypervisor returns its
    records after the cursor, so what an event claims is taken only if the
    hypervisor that hosts the zone says so in its own return, and a record
    the master missed comes with it. What is not confirmed is rejected
    (``alert/rejected``) and changes nothing; what a silent hypervisor
    could not confirm stays claimed. Returns the round's ``(holders,
    silent)``, the claims left waiting, the reasons of those rejected, and
    every confirmed transition not yet converged on (``ready``), in the
    order the events came."""
    name = cluster["name"]
    found, silent, answers = _holders(cluster, {i["zone"]: cursors.get(i["key"]) for i in batch})
    rejected, waiting = [], []
    with _locked(name):
        state = _load(name)
        done = set()
        for key, claimed in _by_key(batch).items():
            items = [dict(i, cluster=cluster) for i in claimed]
            got, bad, later = _confirm("transition", items, cursors.get(key), answers.get(items[0]["zone"]), silent)
            rejected += bad
            waiting += later
            fresh = [r for r in got if not _util("covers")(state["cursors"].get(key), r)]
            state["ready"] = state.setdefault("ready", []) + _take(state, "transition", items, fresh)
            done |= {_ident(i) for i in items if i not in later}
        state["pending"] = [p for p in state["pending"] if _ident(p) not in done]
        state["ready"].sort(key=lambda r: r["received"])  # in the order the events came
        ready = list(state["ready"])
        _save(name, state)
    for item, reason in rejected:
        _reject(_util("record_tag")("transition", name, item), item["claimed"], name, reason)
    return (found, silent), waiting, [reason for _item, reason in rejected], ready


def _converge(name, cluster):
    """Confirm the transitions events have claimed (``pending``) and converge
    the cluster on its VIP once for every transition confirmed and not yet
    converged on (``ready``).

    The claimed transitions are confirmed in the first holders round: each
    node's hypervisor returns its records after the master's cursor, so
    what an event claims is taken only if the hypervisor that hosts the
    zone says so in its own return, and a record the master missed comes
    with it.  What is not confirmed is rejected and changes nothing.

    Runs at most one convergence of a cluster at a time, with at most one
    more queued: a thread that finds one queued leaves its transitions to
    it (it reads ``pending`` when it starts, so it covers them) and returns
    at once.  Three locks, always taken in this order: the queue (held
    from the wait until the queued convergence has read ``pending``), the
    convergence, the state.  Once done, the convergence acknowledges to
    each hypervisor the records of its own it confirmed.
    """
    queue = _Flock(name, ".queue")
    if not queue.acquire(wait=False):
        return []  # a convergence is queued: it will read this call's transitions
    acks = {}
    try:
        with _converging(name):
            with _locked(name):
                state = _load(name)
                cursors = state["cursors"]
                _drop_covered(name, state, state["pending"])
                batch, ready = list(state["pending"]), list(state.setdefault("ready", []))
                queue.release()  # from now on a new transition queues the next convergence
            if not batch and not ready:
                return []  # the one before covered them
            cluster = _clusters(batch[-1]["host"] if batch else ready[-1]["gz"]).get(name) or cluster
            first, waiting, rejected = None, [], []
            if batch:
                first, waiting, rejected, ready = _confirm_claims(cluster, batch, cursors)
            if not ready:
                out = {"rejected": rejected} if rejected else {}
                hosts = sorted({i["host"] for i in waiting})
                if hosts:  # kept in pending, not acknowledged: the beacon sends it again
                    out["unconfirmed"] = f"{', '.join(hosts)} did not answer: the records wait to be confirmed"
                return [out] if out else []

            def take(claims):
                """Transitions claimed while the VIP settles: confirmed in this convergence's next round (one
                a round has already taken, with every record after the cursor, is done)."""
                with _locked(name):
                    state = _load(name)
                    now = state["cursors"]
                    done = _drop_covered(name, state, claims)
                claims = [c for c in claims if c not in done]
                if not claims:
                    return _holders(cluster)[:2]
                found, _waiting, _rejected, confirmed = _confirm_claims(cluster, claims, now)
                ready[:] = confirmed
                return found

            result, alert = _converge_once(cluster, ready, first, take, known={_ident(i) for i in batch})
            with _locked(name):
                state = _load(name)
                covered = {_ident(r) for r in ready}
                state["ready"] = [r for r in state.get("ready", []) if _ident(r) not in covered]
                state["alert"] = alert
                for record in ready:
                    acks[record["key"]] = (record["gz"], state["cursors"].get(record["key"]))
                _save(name, state)
    finally:
        queue.release()
    for key, (host, cur) in sorted(acks.items()):
        _send_ack(host, key, cur)
    return [result]


def transition(tag=None, data=None):
    """
    Handle one ``ucarp/<cluster>/<role>`` event (the reactor calls this).

    The event only claims a transition: it is checked against the claimed
    sender's pillar, then confirmed by the hypervisor that hosts the zone,
    in its own return to the first holders round, and only then recorded
    (the node's cursor, the cluster's last transition, the history) and
    converged on.  An event the hypervisor does not confirm (a minion that
    sent an event list claiming another minion's id, say) changes nothing
    and fires ``ucarp/<cluster>/alert/rejected``.  While a convergence of
    the cluster runs, the next one is queued and covers every transition
    claimed until it starts: a backlog of transitions (a cluster's start-up
    election) converges once or twice, not once per event.

    tag
        The event's tag.

    data
        The event's data as the master received it: the claimed sender in
        ``id``, the beacon's record in ``data``.

    Returns the results of the convergence it ran (``complete`` with the
    holder and the actions, ``alert``, or ``rejected`` with the reasons),
    an empty list when another convergence covers its transition, or
    ``rejected`` / ``duplicate``.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.transition tag=ucarp/web/master data='{"id": "gz2", "data": {...}}'
    """
    return _ingest(tag, data, "transition")


def health(tag=None, data=None):
    """
    Handle one ``ucarp/<cluster>/health/<healthy|sick>`` event (the reactor calls this).

    Once the zone's hypervisor confirms the record (``ucarp.records``, an
    authenticated return), records the node's health for ``ucarp.status``
    and the history.  A sick master that keeps the VIP because no peer is
    healthy fires ``ucarp/<cluster>/alert/all-unhealthy``; the alert clears
    when a node is healthy again.  A record its hypervisor does not confirm
    changes nothing and fires ``ucarp/<cluster>/alert/rejected``.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.health tag=ucarp/web/health/sick data='{"id": "gz1", "data": {...}}'
    """
    return _ingest(tag, data, "health")


def _ingest(tag, data, kind):
    """Check an event and handle it: anything malformed or hostile is rejected."""
    received = time.time()
    sender, item, reason = _check_event(tag, data, kind)
    if reason:
        payload = data.get("data") if isinstance(data, dict) else None
        return _reject(tag, sender, payload.get("cluster") if isinstance(payload, dict) else None, reason)
    item["claimed"] = sender
    with _Reacting():
        if kind == "transition":
            return _record(item, received)
        return _handle_health(item, received)


# Acknowledgements --------------------------------------------------------------
#
# An acknowledgement tells a hypervisor's beacon that a reaction has dealt
# with its records up to a cursor, so it does not send them again (it waits
# ``ACK_WAIT``, 30 s, before it does).  It need not be a job of its own:
# while other reactions run in this process (a start-up election of many
# clusters), what a reaction owes a hypervisor rides on the next holders
# round sent to it, and the last reaction to end sends what is left, one
# ``ucarp.ack_many`` to every hypervisor still owed one.

ACK_HOLD = 5.0  # seconds an acknowledgement may wait for a round to carry it while other reactions run
_OWED = {}  # host -> {key: [cursor, since]}
_OWED_LOCK = threading.Lock()
_ACTIVE = {"reactions": 0}  # reactions running in this process


def _send_ack(host, key, cur):
    """Owe the host's beacon the acknowledgement of its records of ``key``
    up to the cursor ``cur``: sent with the next round to that host, or when
    the reactions of this process end (``_Reacting``).  Only ever a cursor
    made of records that host confirmed."""
    if cur is None:
        return
    with _OWED_LOCK:
        owed = _OWED.setdefault(host, {})
        since = owed[key][1] if key in owed else time.time()
        owed[key] = [{"epoch": cur["epoch"], "seq": cur["seq"]}, since]


def _carry(hosts):
    """Take what is owed to ``hosts`` for a round to carry: ``{host: {key:
    cursor}}`` (``ucarp.holders``' ``acks``), and how to put back what a
    host did not receive."""
    with _OWED_LOCK:
        taken = {h: _OWED.pop(h) for h in hosts if _OWED.get(h)}

    def keep(host):
        for key, (cur, since) in taken.get(host, {}).items():
            with _OWED_LOCK:
                owed = _OWED.setdefault(host, {})
                if key not in owed:  # a newer acknowledgement of the key is owed since: it covers this one
                    owed[key] = [cur, since]

    return {h: {k: cur for k, (cur, _since) in owed.items()} for h, owed in taken.items()}, keep


def _flush_acks(everything):
    """Send what is owed (``everything``), or what has waited ``ACK_HOLD``
    seconds: one ``ucarp.ack_many`` to those hosts at once, no wait."""
    oldest = time.time() - ACK_HOLD
    with _OWED_LOCK:
        due = [h for h, owed in _OWED.items() if owed and (everything or min(s for _c, s in owed.values()) <= oldest)]
        sent = {h: {k: cur for k, (cur, _since) in _OWED.pop(h).items()} for h in due}
    if not sent:
        return
    try:
        _local().cmd_async(sorted(sent), "ucarp.ack_many", [], tgt_type="list", kwarg={"acks": sent})
    except Exception as exc:  # noqa: BLE001 - without the ack the beacon only sends the record again
        log.warning("ucarp: could not acknowledge records to %s: %s", ", ".join(sorted(sent)), exc)


class _Reacting:
    """A reaction running in this process: when the last one ends, it sends
    every acknowledgement still owed; one that ends while others run sends
    only those that waited ``ACK_HOLD`` seconds (the others' rounds carry
    the rest)."""

    def __enter__(self):
        with _OWED_LOCK:
            _ACTIVE["reactions"] += 1
        return self

    def __exit__(self, *exc):
        with _OWED_LOCK:
            _ACTIVE["reactions"] -= 1
            last = _ACTIVE["reactions"] == 0
        _flush_acks(everything=last)


def _record(item, received):
    """Keep a claimed transition for the next convergence, which confirms
    it, and converge.  A repeat changes nothing, unless transitions still
    wait for a convergence (one was cut short): then it runs."""
    name = item["cluster"]["name"]
    entry = {k: item[k] for k in ("key", "kind", "zone", "uuid", "host", "claimed", "epoch", "seq", "ts", "role")}
    entry.update(vhid=item["vhid"], interface=item.get("interface"), received=received)
    with _locked(name):
        state = _load(name)
        cur = state["cursors"].get(item["key"])
        repeat = _util("covers")(cur, item) or any(_ident(p) == _ident(item) for p in state["pending"])
        busy = bool(state["pending"] or state.get("ready"))
        full = not repeat and len(state["pending"]) >= MAX_PENDING
        if not repeat and not full:
            state["pending"].append(entry)
            _save(name, state)
    if full:
        return _reject(_util("record_tag")("transition", name, item), item["claimed"], name,
                       f"{MAX_PENDING} transitions of cluster {name} already wait to be confirmed")  # fmt: skip
    if repeat:
        if _util("covers")(cur, item):
            _send_ack(item["host"], item["key"], cur)  # what that host confirmed earlier
        if busy:
            _converge(name, item["cluster"])
        return {"duplicate": item["seq"]}
    return _converge(name, item["cluster"])


def _handle_health(item, received):
    """Confirm a claimed health record with its hypervisor and handle each
    of the node's records after the master's cursor once and in order (a
    record the master missed comes with it); a repeat is ignored."""
    name = item["cluster"]["name"]
    results = []
    with _locked(name):
        state = _load(name)
        cur = state["cursors"].get(item["key"])
        if _util("covers")(cur, item):
            repeat = True
        else:
            repeat = False
            try:
                answer = _call(item["host"], "ucarp.records", item["zone"], name, "health", after=cur)
            except _CallError as exc:
                log.warning("ucarp: %s did not confirm health record %s of %s: %s", item["host"], item["seq"],
                            item["zone"], exc)  # fmt: skip
                return {"unconfirmed": str(exc)}  # not acknowledged: the beacon sends it again
            got, rejected, _later = _confirm("health", [item], cur, answer if isinstance(answer, dict) else None, [])
            if not rejected:
                for record in _take(state, "health", [dict(item, received=received)], got):
                    results.append(_health(dict(record, cluster=item["cluster"]), state))
                _save(name, state)
                cur = state["cursors"].get(item["key"])
    if repeat:
        _send_ack(item["host"], item["key"], cur)
        return {"duplicate": item["seq"]}
    if rejected:
        ((_item, reason),) = rejected
        return _reject(_util("record_tag")("health", name, item), item["claimed"], name, reason)
    _send_ack(item["host"], item["key"], cur)
    return results


def _health(item, state):
    """Record one health change; raise or clear the all-unhealthy alert."""
    cluster = item["cluster"]
    name = cluster["name"]
    node = {k: item.get(k) for k in ("gz", "state", "action", "detail", "epoch", "seq", "ts")}
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


# History -----------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since_time(since):
    """``since`` as a time: seconds since the epoch, an ISO 8601 time, or a
    duration back from now (``90s``, ``30m``, ``2h``, ``7d``)."""
    if since is None:
        return None
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return float(since)
    text = str(since).strip()
    match = _DURATION_RE.match(text)
    if match:
        return time.time() - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _Refused(f"since={since!r}: give seconds since the epoch, an ISO 8601 time or 30m, 2h, 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _summary(entry):
    """One line saying what a history entry is."""
    data, record = entry.get("data") or {}, entry.get("record") or {}
    kind = entry.get("kind")
    if kind == "transition":
        return f"{record.get('zone')} on {record.get('gz')} became {record.get('role')} (record {record.get('seq')})"
    if kind == "health":
        detail = f": {record['detail']}" if record.get("detail") else ""
        return f"{record.get('zone')} on {record.get('gz')} {record.get('state')}, {record.get('action')}{detail}"
    what = entry.get("tag", "").split("/", 2)[-1]
    if kind == "reaction":
        master, timings = data.get("master") or {}, data.get("timings") or {}
        took, end, begin = "", timings.get("actions_done"), timings.get("transition")
        if isinstance(end, (int, float)) and isinstance(begin, (int, float)):
            took = f" in {end - begin:.1f} s"
        actions = [a for a in data.get("actions") or [] if isinstance(a, dict)]
        counts = [(sum(1 for a in actions if a.get("ok") is want), what)
                  for want, what in ((True, "ok"), (False, "failed"), (None, "skipped"))]  # fmt: skip
        said = ", ".join(f"{n} {what}" for n, what in counts if n) or "no"
        return f"{master.get('zone')} on {master.get('gz')} holds the VIP; actions: {said}{took}"
    if kind == "alert":
        why = data.get("reason") or ", ".join(h.get("zone", "?") for h in data.get("holders") or []) or ""
        return f"{what}{': ' + why if why else ''}"
    if kind == "switchover":
        detail = f"{data.get('from')} -> {data.get('to')}"
    else:
        detail = f"{data.get('master')} kept the VIP" if data.get("master") else ""
    reason = f" ({data['reason']})" if data.get("reason") else ""
    return f"{what}: {detail}{reason}".rstrip(": ")


def history(name=None, since=None, limit=50):
    """
    List what happened to the clusters, newest last: every transition and
    health change its hypervisor confirmed, every reaction (with its
    actions and timings), switchover, rollout and alert.

    Kept on the master in Salt's own cache (``salt.cache``: the master's
    configured ``cache`` backend), at most ``history_size`` entries (1000
    by default; set ``ucarp: {history_size: N}`` in the master config), the
    oldest dropped first.

    name
        Only this cluster.

    since
        Only entries after this time: seconds since the epoch, an ISO 8601
        time, or a duration back from now (``30m``, ``2h``, ``7d``).

    limit
        At most this many entries, the newest (default 50; 0: all).

    A table by default; with ``--out=json`` (or any other outputter) the
    entries themselves, each with ``at``, ``kind``, ``cluster`` and its
    record or event.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.history
        salt-run ucarp.history web since=2h
        salt-run ucarp.history limit=0 --out=json
    """
    try:
        if name is not None and (not isinstance(name, str) or not CLUSTER_RE.match(name)):
            raise _Refused(f"{name!r} is not a cluster name")
        if not _count(limit, 0, 10**9):
            raise _Refused(f"limit={limit!r}: give a number of entries (0: all)")
        start = _since_time(since)
    except _Refused as exc:
        __context__["retcode"] = 1
        return {"result": False, "comment": f"refused: {exc}", "retcode": 1}
    found = [
        e
        for e in _entries()
        if (name is None or e.get("cluster") == name) and (start is None or e.get("at", 0) > start)
    ]
    found = found[-limit:] if limit else found
    if __opts__.get("output") not in (None, "", "nested", "txt", "table"):
        return found
    rows = [("time (UTC)", "cluster", "kind", "what")]
    for entry in found:
        when = datetime.datetime.fromtimestamp(entry.get("at", 0), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((when, str(entry.get("cluster")), str(entry.get("kind")), _summary(entry)))
    widths = [max(len(row[n]) for row in rows) for n in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


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
    found, silent, _ = _holders(cluster)
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
    """Whether the node's last transition is a master record other than ``since``."""
    last = _last_transition(cluster, zone)
    return last is not None and _record_id(last) != since and last.get("role") == "master"


def _record_id(record):
    return None if record is None else (record.get("epoch", ""), record.get("seq"))


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
    """The epoch and number of a node's last recorded transition (None: none)."""
    return _record_id(_last_transition(cluster, zone))


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
    found, _silent, _ = _holders(cluster)
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
