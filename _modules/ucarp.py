"""
UCARP clusters of SmartOS zones: the pillar model and the state of the VIPs.

The clusters are described in pillar under ``ucarp:clusters`` (see the
formula's ``pillar.example``) and merged with the formula's defaults and the
optional ``ucarp:defaults``.  Everything is validated before anything is
applied: ``ucarp.validate`` lists every problem with its pillar path.

:depends: the ``ucarp_model`` util of this formula; ``vmadm`` and ``zlogin``
    for ``status``
:platform: SmartOS global zone
"""

import fcntl
import json
import logging
import os
import posixpath
import time

import salt.version
from salt.exceptions import CommandExecutionError

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import run_cache as _packaged_run_cache
    from saltext.ucarp.utils import ucarp_model as _packaged_model
    from saltext.ucarp.utils import zone_root as _packaged_zone_root
except ImportError:  # a formula: the utils are synced and come through __utils__
    _packaged_model = _packaged_run_cache = _packaged_zone_root = None

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"
OVERRIDE_TTL = 300  # seconds a planned step's override is good for


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"ucarp: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if _packaged_model or "ucarp_model.normalise" in __utils__:
        return __virtualname__
    return (False, "ucarp: the formula's ucarp_model util is missing (run saltutil.sync_all)")


def _util(name):
    """A function of the formula's cluster model (``_utils/ucarp_model.py``)."""
    return getattr(_packaged_model, name) if _packaged_model else __utils__[f"ucarp_model.{name}"]


def _run(name):
    """A function of the formula's per-run cache (``_utils/run_cache.py``)."""
    return getattr(_packaged_run_cache, name) if _packaged_run_cache else __utils__[f"run_cache.{name}"]


def _remember(name, compute):
    """``compute()`` once per run's store under ``name`` (every time outside one)."""
    store = _run("current")(__context__)
    if store is None:
        return compute()
    if name not in store:
        store[name] = compute()
    return store[name]


def _normalised():
    """The pillar, validated: once per state run or per call that opens a store."""

    def compute():
        raw = __salt__["config.get"]("ucarp:clusters", {})
        defaults = __salt__["config.get"]("ucarp:defaults", {})
        return _util("normalise")(raw, defaults)

    return _remember("ucarp.model", compute)


def validate():
    """
    Check the ``ucarp`` pillar; return every problem with its pillar path.

    An empty list means the pillar is good.  With problems, the call's exit
    status is 1 (``salt-call`` exits 1, ``salt`` reports retcode 1), so a
    pipeline or a pre-apply check can gate on it.

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.validate
        salt-call --local ucarp.validate && salt-call state.apply ucarp
    """
    problems = list(_normalised()[1])
    if problems:
        __context__["retcode"] = 1
    return problems


def clusters():
    """
    Return the validated cluster model (defaults merged; passwords left out).

    A pillar with problems is an error that lists all of them.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.clusters
    """
    model, problems = _normalised()
    if problems:
        __context__["retcode"] = 1
        listing = "\n".join(f"  - {p}" for p in problems)
        raise CommandExecutionError(f"ucarp: the pillar has {len(problems)} problem(s), nothing applied:\n{listing}")
    return model


def plan(host=None):
    """
    Return what a global zone must run: its zones (vmadm payloads, SMF
    manifest) and its nodes (one per cluster and zone, with their files).
    A pillar with problems is an error that lists them all, and the call
    exits 1.

    host
        The global zone's minion id (this minion by default).

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.plan
    """
    return _util("host_plan")(clusters(), host or __opts__["id"])


def nodes(host=None):
    """
    Return the nodes a global zone hosts: ``{cluster: zone alias}`` pairs.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.nodes
    """
    return [{"cluster": n["cluster"], "zone": n["alias"]} for n in plan(host)["nodes"]]


IFCONFIG = ["/usr/sbin/ifconfig", "-a"]


def _ask_addresses(zones):
    """Ask every zone in ``zones`` for its addresses at once (``zlogin.run_each``)
    and keep the answers for this call's ``_holds``."""
    store = _run("current")(__context__)
    todo = sorted({z for z in zones if store is None or f"ucarp.ifconfig.{z}" not in store})
    if store is None or not todo:
        return
    for zone, res in __salt__["zlogin.run_each"]({z: IFCONFIG for z in todo}).items():
        store[f"ucarp.ifconfig.{zone}"] = res.get("stdout", "") if res.get("retcode") == 0 else ""


def _holds(zone, vip):
    """Whether ``zone`` has ``vip`` up: one ``ifconfig -a`` per zone and call."""

    def compute():
        res = __salt__["zlogin.run"](zone, IFCONFIG)
        return res["stdout"] if res["retcode"] == 0 else ""

    return f"inet {vip} " in _remember(f"ucarp.ifconfig.{zone}", compute)


def _running_nodes(nodes):
    """The aliases of ``nodes`` whose zone runs (from this call's one vmadm lookup)."""
    running = set()
    for node in nodes:
        try:
            if __salt__["vmadm.state"](node["alias"]) == "running":
                running.add(node["alias"])
        except CommandExecutionError:
            continue
    return running


def _read_records(zone, cluster, kind, after=None, limit=None):
    """A node's records of ``kind`` not yet taken by ``after``
    (``ucarp_model.records_after``), read with the formula's one zone-root
    reader in a call that opened a store (``zlogin`` otherwise).

    ``after``: a cursor, or a bare record number, which counts in the epoch
    of the node's last record (0: from the start)."""
    vip = _cluster(cluster)["vip"] if kind == "transition" else None
    text = _record_text(zone, _util("record_path")(kind, cluster))
    found = _util("parse_records")(kind, text, cluster, vip)
    if after is not None and not isinstance(after, dict):
        number = int(after)
        after = {"epoch": found[-1]["epoch"] if found else "", "seq": number, "passed": []} if number > 0 else None
    return _util("records_after")(found, _after(after), limit)


def _record_text(zone, path):
    """A record file of a zone, running or not, read under its root as the
    beacon reads it (``zone_root.try_read``: no link followed, regular files
    only, bounded).  What is refused there is read through ``zlogin`` in a
    running zone, and taken for empty in one that is not."""
    vm = __salt__["vmadm.get"](zone)
    try_read = _packaged_zone_root.try_read if _packaged_zone_root else __utils__["zone_root.try_read"]
    outcome, data = try_read(posixpath.join(vm["zonepath"], "root"), path)
    if outcome == "ok":
        return data.decode("utf-8", errors="replace")
    if outcome == "refused":
        log.warning("ucarp: zone %s: %s not read under the zone root: %s", zone, path, data)
        if vm.get("state") == "running":
            return __salt__["zlogin.file_read"](zone, path, missing_ok=True) or ""
    return ""


def _after(value, name="after"):
    """A cursor given on the command line or by the runner, checked."""
    if value is None:
        return None
    found = _util("cursor")(value)
    if found is None:
        raise CommandExecutionError(f"ucarp: {name} must be a record number or a cursor (epoch, seq), not {value!r}")
    return found


RECORDS_LIMIT = 1000  # records one answer carries at most (the newest): as many as a record file keeps


def records(zone, cluster, kind="transition", after=None, limit=RECORDS_LIMIT):
    """
    Return a node's records of one kind that come after a cursor, and its zone's UUID.

    kind
        ``transition`` (what its hooks recorded) or ``health`` (its agent).

    after
        A cursor (``{"epoch", "seq"}``, as the beacon and the master keep
        them), or a record number of the record's current epoch; none: every
        record.  A record file that went back (emptied, an older copy, the
        zone rolled back or reprovisioned) has started a new epoch: what
        came after the cursor is the new epoch's records, not the old ones.

    limit
        At most this many, the newest (default 1000, as many as a record file keeps).

    ``{"zone", "uuid", "records": [{"epoch", "seq", "ts", ...}]}``, read
    under the zone's root with no process.  The master's runner confirms
    the records a hypervisor's events claim with this answer.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.records zoneA web
        salt gz1 ucarp.records zoneA web health after=3
    """
    if kind not in _util("record_kinds")():
        raise CommandExecutionError(f"ucarp: kind must be one of {', '.join(_util('record_kinds')())}, not {kind!r}")
    with _run("scope")(__context__):
        found = _read_records(zone, cluster, kind, after, int(limit))
        return {"zone": zone, "uuid": __salt__["vmadm.uuid"](zone), "records": found}


def last_transition(zone, cluster):
    """
    Return the last VIP transition a zone's hooks recorded for a cluster, or None.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.last_transition zoneA web
    """
    found = _read_records(zone, cluster, "transition", limit=1)
    return found[-1] if found else None


def files(cluster):
    """
    Return where a cluster's node keeps its files in a zone: options
    (``conf``), passfile (``pass``), health checks (``checks``), the hooks'
    transitions record, the agent's health record, a switchover's override.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.files web
    """
    return _util("node_files")(str(cluster))


def watch_list(host=None):
    """
    Return what the ``ucarp`` beacon watches on a global zone: for each local
    node, its zone alias, cluster, VIP, VHID and its record files in the zone
    by kind (``records``: transitions, and health changes with health checks).

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.watch_list
    """
    model = clusters()
    return [
        {
            "zone": node["alias"],
            "cluster": node["cluster"],
            "vip": model[node["cluster"]]["vip"],
            "vhid": model[node["cluster"]]["vhid"],
            "records": {
                kind: _util("record_path")(kind, node["cluster"])
                for kind in _util("record_kinds")()
                if kind == "transition" or node["checks"]
            },
        }
        for node in plan(host)["nodes"]
    ]


def _acks_path():
    return os.path.join(__opts__["cachedir"], "ucarp", "beacon-acks.json")


def acks():
    """
    Return the records of the ``ucarp`` beacon that a reaction on the master
    has acknowledged: a cursor (``{"epoch", "seq", "passed"}``) per record
    key (``<zone uuid>/<cluster>/<kind>``).

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.acks
    """
    try:
        with open(_acks_path(), encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    cursors = {}
    for given, value in found.items():
        cur = _util("cursor")(value)
        key = _util("migrated_record_key")(given)
        if cur is not None and key is not None:
            cursors[key] = cur
    return cursors


def _checked_ack(key, seq, epoch):
    """The record key and cursor of one acknowledgement; raises when malformed."""
    key, epoch = str(key), "" if epoch is None else str(epoch)
    if not _util("is_record_key")(key):
        raise CommandExecutionError(f"ucarp.ack: {key!r} is not a record key (<zone uuid>/<cluster>/<kind>)")
    number = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    if number is None and isinstance(seq, str) and seq.isdigit():
        number = int(seq)
    if number is None or _util("cursor")({"epoch": epoch, "seq": number}) is None:
        raise CommandExecutionError(f"ucarp.ack: bad epoch {epoch!r} or number {seq!r} for {key}")
    return key, {"epoch": epoch, "seq": number}


def _store_acks(given):
    """Advance the kept cursor of every key in ``given`` (``{key: {"epoch",
    "seq"}}``, checked) in one write, under the acks file's lock.  The
    cursors now kept for those keys."""
    path = _acks_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        found = acks()
        for key, cur in given.items():
            found[key] = _util("advance")(found.get(key), cur)
        tmp = f"{path}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
            json.dump(found, fh)
        os.replace(tmp, path)
    finally:
        os.close(fd)
    return {key: found[key] for key in given}


def ack(key, seq, epoch=""):
    """
    Note that the master has dealt with the beacon's records up to ``seq``
    of ``epoch`` for ``key`` (``<zone uuid>/<cluster>/<kind>``), so the
    beacon does not send them again.  The ``ucarp.transition`` and
    ``ucarp.health`` runners acknowledge records the hypervisor has
    confirmed, most often in their next round to it (``ucarp.holders``)
    or else with ``ucarp.ack_many``; an acknowledgement of an epoch the
    records have left changes nothing.  Returns the cursor now kept.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.ack 2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d/web/transition 12 epoch=5818c4c6d0538322
    """
    key, cur = _checked_ack(key, seq, epoch)
    return _store_acks({key: cur})[key]


def _own_acks(given, fun):
    """This minion's part of ``{minion id: {key: {"epoch", "seq"}}}``, checked."""
    if not isinstance(given, dict):
        raise CommandExecutionError(f"ucarp.{fun}: acks must map minion ids to record keys and cursors")
    mine = given.get(__opts__["id"]) or {}
    if not isinstance(mine, dict):
        raise CommandExecutionError(f"ucarp.{fun}: the acks for {__opts__['id']} must map record keys to cursors")
    checked = {}
    for given_key, cur in mine.items():
        if not isinstance(cur, dict):
            raise CommandExecutionError(f"ucarp.{fun}: the ack of {given_key!r} is not a cursor")
        key, checked_cur = _checked_ack(given_key, cur.get("seq"), cur.get("epoch", ""))
        checked[key] = checked_cur
    return checked


def _keep_acks(acks, fun):
    """Keep this minion's part of ``acks`` (``_own_acks``) in one write: the cursors now kept."""
    mine = _own_acks(acks, fun)
    return _store_acks(mine) if mine else {}


def ack_many(acks):
    """
    Acknowledge several records at once (``ucarp.ack`` for each), in one
    write: ``acks`` maps minion ids to ``{record key: {"epoch", "seq"}}``,
    and this minion takes its own part (the runner sends one job to every
    hypervisor it owes an acknowledgement).  Returns the cursors now kept
    for those keys.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.ack_many \\
          '{"gz1": {"2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d/web/transition": {"epoch": "", "seq": 12}}}'
    """
    return _keep_acks(acks, "ack_many")


def _cluster(cluster):
    model = clusters()
    if cluster not in model:
        raise CommandExecutionError(f"ucarp: no cluster {cluster!r} in pillar")
    return model[cluster]


def health_records(zone, cluster, since=0):
    """
    Return the health changes a zone's agent recorded for a cluster after
    ``since`` (a record number of the current epoch, or a cursor).

    A list of ``{"epoch", "seq", "ts", "state", "action", "detail"}`` in
    order; empty when the cluster has no health checks.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.health_records zoneA web since=3
    """
    if not _cluster(cluster).get("health"):
        return []
    return _read_records(zone, cluster, "health", since)


def health(zone, cluster):
    """
    Return a node's health: its last recorded change, or None when the
    cluster has no health checks (or the agent has recorded nothing yet).

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.health zoneA web
    """
    if not _cluster(cluster).get("health"):
        return None
    found = _read_records(zone, cluster, "health", limit=1)
    return found[-1] if found else None


def override(cluster, zone, mode=None, refresh=True, ttl=OVERRIDE_TTL):
    """
    Restart a node's ucarp for one step of a planned switchover, or back to
    normal (``mode`` None).  The ``ucarp.switchover`` runner calls this.

    mode
        ``preempt`` (advskew 0 and --preempt: take the VIP from the master at
        its next advert), ``slow`` (wait longer than usual for a silent
        master), ``keep-vip`` (restart the master without dropping the VIP)
        or None (no override).

    refresh
        Restart the node's ucarp with it now (default).  ``False`` only
        writes or removes the override.

    ttl
        Seconds the override is good for (default 300): after them the
        agent ignores it, and restarts a backup's ucarp that runs with it
        on its own options, so a step left by an interrupted switchover or
        rollout cannot slow a later failover.

    The override lives in ``/var/db/ucarp/<cluster>.override`` in the zone;
    ``svcadm refresh`` makes the instance's agent restart ucarp with it.  It
    lasts until the next override, its expiry or the next start of the
    instance. The agent uses it only if it is a regular file owned by root
    and writable by root alone (``ucarp.status`` shows one it ignores).

    CLI Example:

    .. code-block:: bash

        salt gz2 ucarp.override web zoneB preempt
    """
    model = _cluster(cluster)
    if zone not in model["nodes"]:
        raise CommandExecutionError(f"ucarp: {zone} is not a node of cluster {cluster}")
    path = _util("node_files")(cluster)["override"]
    if mode is None:
        if __salt__["zlogin.file_stat"](zone, path) is not None:
            __salt__["zlogin.file_remove"](zone, path)
    else:
        try:
            lines = _util("override_lines")(model, mode, time.time() + int(ttl))
        except ValueError as exc:
            raise CommandExecutionError(f"ucarp: {exc}") from exc
        __salt__["zlogin.file_write"](zone, path, "\n".join(lines) + "\n", mode="0644", makedirs=True)
    if refresh:
        __salt__["zlogin.svc_refresh"](zone, model["fmri"])
    return {"zone": zone, "cluster": cluster, "override": mode, "refreshed": bool(refresh)}


def transitions(zone, cluster, since=0):
    """
    Return the transitions a zone's hooks recorded for a cluster after
    ``since`` (a record number of the current epoch, or a cursor).

    A list of ``{"epoch", "seq", "ts", "role", ...}`` in order.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.transitions zoneA web since=41
    """
    return _read_records(zone, cluster, "transition", since)


def holders(cluster, after=None, acks=None):
    """
    Return, for each zone of this global zone in a cluster, whether it holds the VIP now.

    after
        ``{zone: cursor}`` (the master's runner sends it): the answer is then
        ``{"holders": {...}, "records": {zone: {"uuid", "records"}}}`` with
        each of these zones' transitions after its cursor (``ucarp.records``),
        which is how the runner confirms what an event claims: this is an
        authenticated return from the hypervisor that hosts the zone.

    acks
        Acknowledgements the runner owes this minion, carried by the round
        instead of a job of their own: as ``ucarp.ack_many`` takes them,
        and kept before the holders are asked.  Malformed ones are refused
        with an error, and nothing else is done.

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.holders web
    """
    if acks is not None:
        _keep_acks(acks, "holders")
    with _run("scope")(__context__):
        vip = _cluster(cluster)["vip"]
        nodes = [n for n in plan()["nodes"] if n["cluster"] == cluster]
        running = _running_nodes(nodes)
        _ask_addresses(running)
        held = {n["alias"]: n["alias"] in running and _holds(n["alias"], vip) for n in nodes}
        if after is None:
            return held
        if not isinstance(after, dict):
            raise CommandExecutionError("ucarp.holders: after must map zones to cursors")
        found = {}
        for zone, cur in after.items():
            if zone not in held:
                continue  # not a node of this global zone: the runner will not find it confirmed here
            found[zone] = {
                "uuid": __salt__["vmadm.uuid"](zone),
                "records": _read_records(zone, cluster, "transition", _after(cur), RECORDS_LIMIT),
            }
        return {"holders": held, "records": found}


MAX_ASKS = 256  # clusters one holders_many call may ask about


def holders_many(asks, acks=None):
    """
    ``ucarp.holders`` for several clusters in one call: what the runner
    sends when reactions of several clusters on the same hypervisors ask at
    once (a start-up election, a hypervisor that died with many masters).
    One ``vmadm`` and every zone's ``ifconfig -a`` at once, for all of them.

    asks
        ``[{"cluster": <name>, "after": <as for ucarp.holders, or None>}]``.

    acks
        As for ``ucarp.holders``.

    Returns a list in the order of ``asks``: ``{"answer": <what
    ucarp.holders returns>}`` for each, or for a cluster it cannot answer
    about (not in this minion's pillar, say) ``{"error": <why>}``: the
    others are answered all the same.

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.holders_many '[{"cluster": "web"}, {"cluster": "db"}]'
    """
    if not isinstance(asks, list) or not 0 < len(asks) <= MAX_ASKS:
        raise CommandExecutionError(f"ucarp.holders_many: asks must be a list of 1 to {MAX_ASKS} clusters")
    for ask in asks:
        if not isinstance(ask, dict) or not isinstance(ask.get("cluster"), str) or set(ask) - {"cluster", "after"}:
            raise CommandExecutionError(f"ucarp.holders_many: {str(ask)[:80]!r} is not {{cluster, after}}")
    if acks is not None:
        _keep_acks(acks, "holders_many")
    with _run("scope")(__context__):
        asked = {a["cluster"] for a in asks}
        _ask_addresses(_running_nodes([n for n in plan()["nodes"] if n["cluster"] in asked]))  # all at once
        answers = []
        for ask in asks:
            try:
                answers.append({"answer": holders(ask["cluster"], after=ask.get("after"))})
            except CommandExecutionError as exc:
                answers.append({"error": str(exc)})
        return answers


def _override_info(zone, cluster):
    """The node's override as its agent sees it (None: there is none)."""
    path = _util("node_files")(cluster)["override"]
    stat = __salt__["zlogin.file_stat"](zone, path)
    text = __salt__["zlogin.file_read"](zone, path) if stat and stat["type"] == "file" else None
    return _util("override_info")(stat, text, time.time())


def status():
    """
    Return the state of this global zone's UCARP nodes.

    For each node: its zone and zone state, the SMF state of its instance,
    whether it holds the VIP now, its last recorded transition, its
    health (the agent's last record; None without health checks) and its
    override (a planned step's: ``mode``, ``expires`` and, when the agent
    does not use it, why in ``ignored``; None without one).

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.status
    """
    with _run("scope")(__context__):  # one pillar model, one vmadm, one svcs -Z, files under the zone roots
        return _status()


def _status():
    model = clusters()
    out = []
    nodes = plan()["nodes"]
    _ask_addresses(_running_nodes(nodes))
    for node in nodes:
        cluster = model[node["cluster"]]
        entry = {"cluster": node["cluster"], "zone": node["alias"], "vip": cluster["vip"], "vhid": cluster["vhid"]}
        try:
            entry["zone_state"] = __salt__["vmadm.state"](node["alias"])
        except CommandExecutionError as exc:
            entry.update(zone_state="absent", error=str(exc))
            out.append(entry)
            continue
        if entry["zone_state"] == "running":
            entry["service"] = __salt__["zlogin.svc_state"](node["alias"], node["fmri"])
            entry["holds_vip"] = _holds(node["alias"], cluster["vip"])
            entry["last_transition"] = last_transition(node["alias"], node["cluster"])
            entry["health"] = health(node["alias"], node["cluster"]) if node["checks"] else None
            entry["override"] = _override_info(node["alias"], node["cluster"])
        else:
            entry.update(service=None, holds_vip=False, last_transition=None, health=None, override=None)
        out.append(entry)
    return out


# Reaction rounds (called by the runner) ---


def _checked_work(cluster, work):
    """This global zone's entries of ``work``, every entry checked first (an
    error names the first bad one; nothing has run then)."""
    if not isinstance(work, list):
        raise CommandExecutionError("ucarp.run_actions: work must be a list of entries")
    model = _cluster(cluster)
    mine = []
    for i, entry in enumerate(work):
        where = f"ucarp.run_actions: work[{i}]"
        if not isinstance(entry, dict):
            raise CommandExecutionError(f"{where} must be a mapping with zone, host, role and actions")
        if entry.get("host") != __opts__["id"]:
            continue  # another hypervisor's: the runner sends one list to all of them
        zone, role, actions = entry.get("zone"), entry.get("role"), entry.get("actions")
        node = model["nodes"].get(zone) if isinstance(zone, str) else None
        if node is None or node["host"] != __opts__["id"]:
            raise CommandExecutionError(f"{where}.zone: {zone!r} is not a node of cluster {cluster} on this hypervisor")
        if role not in ("master", "backup"):
            raise CommandExecutionError(f"{where}.role: {role!r} is neither master nor backup")
        if not isinstance(actions, list):
            raise CommandExecutionError(f"{where}.actions must be a list")
        for j, action in enumerate(actions):
            kind, arg = (action.get("action"), action.get("arg")) if isinstance(action, dict) else (None, None)
            try:
                _util("action_function")(kind)
            except (KeyError, TypeError):
                raise CommandExecutionError(f"{where}.actions[{j}].action: unknown action {kind!r}") from None
            if not isinstance(arg, str) or not arg.strip():
                raise CommandExecutionError(f"{where}.actions[{j}].arg: must be a non-empty string")
        mine.append({"zone": zone, "role": role, "actions": actions})
    return mine


def _run_action(zone, action):
    """One action in a running zone: (ok, detail)."""
    fun = _util("action_function")(action["action"])
    extra = {"clear": True} if action["action"] == "svc_enable" else {}
    try:
        ret = __salt__[fun](zone, action["arg"], **extra)
    except CommandExecutionError as exc:
        return False, str(exc)
    if fun == "zlogin.run" and ret.get("retcode"):
        return False, f"exit {ret['retcode']}: {(ret.get('stderr') or '').strip()}"
    return True, ret


def run_actions(cluster, work):
    """
    Run a reaction's ``on_master`` / ``on_backup`` actions in this global
    zone's nodes of a cluster, in one call.  The ``ucarp.transition`` runner
    sends the same ``work`` to every hypervisor of the cluster at once; each
    runs its own entries.

    cluster
        The cluster's name in pillar.

    work
        A list of entries ``{"zone": <alias>, "host": <minion id>, "role":
        "master" or "backup", "actions": [{"action": "svc_enable",
        "svc_disable", "svc_restart" or "run", "arg": <FMRI or command
        line>}, ...]}``.  Entries of another ``host`` are left to it.  Every
        entry is checked before any action runs: a zone that is not this
        global zone's node of the cluster, a bad role, an unknown action or
        an empty argument is an error naming the entry (``work[2].role``),
        and nothing runs.

    Returns one ``{"zone", "role", "action", "arg", "ok", "detail"}`` per
    action of this global zone's entries, in order.  ``ok`` is True
    (``detail``: what the function returned), False (``detail``: its
    error, or a command's exit status and stderr) or None: the zone is not
    running and its actions were skipped (``detail``: ``zone is
    stopped``).  ``svc_enable`` clears an instance svcadm finds in
    maintenance and enables it again.  A failed action
    does not stop the zone's next ones.

    CLI Example:

    .. code-block:: bash

        salt gz2 ucarp.run_actions web work='[{"zone": "web-b", "host": "gz2", "role": "master",
            "actions": [{"action": "svc_enable", "arg": "svc:/site/app:default"}]}]'
    """
    with _run("scope")(__context__):  # one vmadm lookup for every zone of the call
        return _run_actions(cluster, work)


def _run_actions(cluster, work):
    out = []
    for entry in _checked_work(cluster, work):
        zone = entry["zone"]
        try:
            state = __salt__["vmadm.state"](zone)
        except CommandExecutionError as exc:
            state, why = None, f"zone is unknown: {exc}"
        else:
            why = None if state == "running" else f"zone is {state}"
        for action in entry["actions"]:
            result = {"zone": zone, "role": entry["role"], "action": action["action"], "arg": action["arg"]}
            if why is not None:
                out.append(dict(result, ok=None, detail=why))
                continue
            ok, detail = _run_action(zone, action)
            out.append(dict(result, ok=ok, detail=detail))
    return out
