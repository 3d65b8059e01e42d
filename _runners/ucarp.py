"""
React to UCARP VIP transitions and report the fleet's VIPs (on the master).

The hypervisors' ``ucarp`` beacon sends each transition as the event
``ucarp/<cluster>/<role>``; the reactor hands it to ``ucarp.transition``,
which:

- trusts only the sending minion's id: the cluster, zone, VIP and VHID must
  match pillar, and pillar must say that this hypervisor hosts that zone.
  Anything else changes nothing and fires ``ucarp/<cluster>/alert/rejected``;
- processes each node's transitions once and in order (a gap is filled from
  the zone's own record, a repeat is ignored);
- checks every node: with exactly one holder of the VIP, it runs the
  cluster's ``on_master`` actions in that zone and its ``on_backup`` actions
  in the others (through ``zlogin`` on the right hypervisor) and fires
  ``ucarp/<cluster>/failover/complete`` with timings; no holder fires
  ``ucarp/<cluster>/alert/no-master``, several ``ucarp/<cluster>/alert/split-brain``.

``salt-run ucarp.status`` shows every cluster: VIP, master zone and
hypervisor, backups, last transition, alert.

:depends: the formula's ``ucarp_model`` util, synced to the master
    (``salt-run saltutil.sync_all``)
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import time

import salt.client
import salt.utils.event

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CALL_TIMEOUT = 60
REPLY_WAIT = 60  # how long to keep asking a hypervisor that does not answer


def __virtual__():
    return __virtualname__


# State kept on the master -----------------------------------------------------


def _state_dir():
    path = os.path.join(__opts__["cachedir"], "ucarp")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(cluster):
    """One transition of a cluster at a time (the reactor runs several at once)."""
    fd = os.open(os.path.join(_state_dir(), f"{cluster}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load(cluster):
    try:
        with open(os.path.join(_state_dir(), f"{cluster}.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {"cursors": {}, "last": None, "alert": None}


def _save(cluster, state):
    path = os.path.join(_state_dir(), f"{cluster}.json")
    fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(f"{path}.tmp", path)


# Talking to the fleet ---------------------------------------------------------


def _fire(tag, data):
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
        bus.fire_event(data, tag)
    log.info("ucarp: fired %s", tag)


def _local():
    return salt.client.get_local_client(__opts__["conf_file"])


def _cmd(hosts, fun, args=(), kwarg=None):
    """``LocalClient.cmd`` on a list of hypervisors, asked again (bounded) until
    each has answered: a minion that has just reconnected to a restarted
    master drops the first job it cannot decrypt."""
    replies = {}
    deadline = time.time() + REPLY_WAIT
    while True:
        missing = [h for h in hosts if h not in replies]
        got = _local().cmd(missing, fun, list(args), kwarg=kwarg, tgt_type="list", timeout=CALL_TIMEOUT,
                           full_return=True)  # fmt: skip
        replies.update({h: r for h, r in got.items() if isinstance(r, dict) and "ret" in r})
        if len(replies) == len(hosts) or time.time() >= deadline:
            return replies
        time.sleep(1)


def _call(minion, fun, *args, **kwargs):
    """Run an execution function on one minion; (ok, return or error text)."""
    reply = _cmd([minion], fun, args, kwargs or None)
    if minion not in reply:
        return False, f"{minion} did not answer"
    ret = reply[minion]
    if ret.get("retcode", 0) != 0 or (isinstance(ret.get("ret"), str) and ret["ret"].startswith("ERROR")):
        return False, str(ret.get("ret"))
    return True, ret.get("ret")


def _model(minion):
    """The validated clusters in the pillar of ``minion`` (compiled on the master)."""
    pillar = __salt__["pillar.show_pillar"](minion) or {}
    ucarp = pillar.get("ucarp") or {}
    model, problems = __utils__["ucarp_model.normalise"](ucarp.get("clusters") or {}, ucarp.get("defaults") or {})
    if problems:
        log.warning("ucarp: the pillar of %s has problems: %s", minion, "; ".join(problems))
    return model


# The reaction -------------------------------------------------------------------


def _check_event(tag, data):
    """The trusted sender and the checked payload of an event, or a reason to reject it."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None, None, "the event carries no sender id"
    sender, payload = data["id"], data.get("data")
    if not isinstance(payload, dict):
        return sender, None, "the event has no data"
    cluster, role, zone = payload.get("cluster"), payload.get("role"), payload.get("zone")
    if not isinstance(cluster, str) or not CLUSTER_RE.match(cluster) or role not in ("master", "backup"):
        return sender, None, "malformed cluster or role"
    if tag != f"ucarp/{cluster}/{role}":
        return sender, None, f"the tag {tag!r} does not match the data"
    if not isinstance(payload.get("seq"), int) or payload["seq"] < 1 or not isinstance(payload.get("ts"), int):
        return sender, None, "malformed sequence number or time"
    if not isinstance(payload.get("zone_uuid"), str) or not UUID_RE.match(payload["zone_uuid"]):
        return sender, None, "malformed zone UUID"
    model = _model(sender)
    node = model.get(cluster, {}).get("nodes", {}).get(zone) if isinstance(zone, str) else None
    if node is None:
        return sender, None, f"zone {zone!r} is not a node of cluster {cluster} in pillar"
    if node["host"] != sender:
        return sender, None, f"zone {zone} of cluster {cluster} is hosted by {node['host']}, not {sender}"
    if payload.get("vip") != model[cluster]["vip"] or payload.get("vhid") != model[cluster]["vhid"]:
        return sender, None, "the VIP or VHID does not match pillar"
    return sender, dict(payload, model=model[cluster]), None


def _reject(tag, sender, data, reason):
    cluster = None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        cluster = data["data"].get("cluster")
    safe = cluster if isinstance(cluster, str) and CLUSTER_RE.match(cluster) else "unknown"
    _fire(f"ucarp/{safe}/alert/rejected", {"sender": sender, "tag": str(tag)[:200], "reason": reason})
    log.warning("ucarp: rejected %s from %s: %s", tag, sender, reason)
    return {"rejected": reason}


def _run_actions(cluster, zone, host, role):
    """Run the cluster's actions for ``role`` in one zone; what each did."""
    done = []
    actions = cluster[f"on_{role}"]
    if actions:
        ok, state = _call(host, "vmadm.state", zone)
        if not ok or state != "running":
            skipped = f"zone is {state if ok else 'unknown'}"
            return [dict(a, zone=zone, ok=None, detail=skipped) for a in actions]
    for action in actions:
        fun = __utils__["ucarp_model.action_function"](action["action"])
        extra = {"clear": True} if action["action"] == "svc_enable" else {}
        ok, ret = _call(host, fun, zone, action["arg"], **extra)
        if ok and fun == "zlogin.run" and isinstance(ret, dict) and ret.get("retcode"):
            ok, ret = False, f"exit {ret['retcode']}: {ret.get('stderr', '').strip()}"
        done.append({"zone": zone, "action": action["action"], "arg": action["arg"], "ok": ok, "detail": ret})
    return done


def _holders(cluster):
    """The zones holding the VIP, and the hypervisors that did not answer."""
    hosts = sorted({node["host"] for node in cluster["nodes"].values()})
    replies = _cmd(hosts, "ucarp.holders", [cluster["name"]])
    found = []
    for host, reply in replies.items():
        if isinstance(reply.get("ret"), dict):
            found += [{"zone": zone, "gz": host} for zone, held in reply["ret"].items() if held is True]
    return sorted(found, key=lambda h: h["zone"]), sorted(set(hosts) - set(replies))


def _check(cluster, settle):
    """Who holds the VIP once it settles (bounded: ``settle`` seconds)."""
    deadline = time.time() + settle
    found, silent = _holders(cluster)
    while (len(found) != 1 or silent) and time.time() < deadline:
        time.sleep(0.5)
        found, silent = _holders(cluster)
    return found


def _process(item, state):
    """React to one transition: find who holds the VIP now and converge on it.

    The actions follow the holder found, not the event: events of several
    nodes may be processed in any order (an election at start-up, say), and
    the zones must end up as the VIP is, not as the last event said.
    """
    cluster = item["model"]
    name = cluster["name"]
    timings = {"transition": item["ts"], "received": item["received"]}
    found = _check(cluster, settle=cluster["advbase"] * cluster["deadratio"] + 3)
    timings["checked"] = time.time()
    transition = {k: item[k] for k in ("zone", "gz", "role", "seq", "ts")}
    state["last"] = dict(transition, received=item["received"])
    report = {"cluster": name, "vip": cluster["vip"], "transition": transition}
    if len(found) != 1:
        kind = "no-master" if not found else "split-brain"
        state["alert"] = {"kind": kind, "holders": found, "at": time.time()}
        _fire(f"ucarp/{name}/alert/{kind}", dict(report, holders=found, timings=timings))
        return {"alert": kind, "holders": found}
    master = found[0]
    actions = _run_actions(cluster, master["zone"], master["gz"], "master")
    for alias, node in sorted(cluster["nodes"].items()):
        if alias != master["zone"]:
            actions += _run_actions(cluster, alias, node["host"], "backup")
    timings["actions_done"] = time.time()
    state["alert"] = None
    _fire(f"ucarp/{name}/failover/complete", dict(report, master=master, actions=actions, timings=timings))
    return {"complete": master, "actions": actions}


def transition(tag=None, data=None):
    """
    Handle one ``ucarp/<cluster>/<role>`` event (the reactor calls this).

    tag
        The event's tag.

    data
        The event's data as the master received it: the sender's minion id
        in ``id`` (checked by the master), the beacon's payload in ``data``.

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.transition tag=ucarp/web/master data='{"id": "gz2", "data": {...}}'
    """
    received = time.time()
    sender, item, reason = _check_event(tag, data)
    if reason:
        return _reject(tag, sender, data, reason)
    cluster = item["model"]["name"]
    key = f"{sender}/{item['zone']}/{item['zone_uuid']}"
    results = []
    with _locked(cluster):
        state = _load(cluster)
        last = state["cursors"].get(key)
        if last is not None and item["seq"] <= last:
            return {"duplicate": item["seq"]}
        todo = []
        if last is not None and item["seq"] > last + 1:
            ok, missed = _call(sender, "ucarp.transitions", item["zone"], cluster, since=last)
            if ok and isinstance(missed, list):
                todo += [dict(item, **m) for m in missed if last < m.get("seq", 0) < item["seq"]]
        todo.append(item)
        for each in todo:
            results.append(_process(dict(each, gz=sender, received=received), state))
            state["cursors"][key] = each["seq"]
            _save(cluster, state)
    return results


def status(tgt="*", timeout=30):
    """
    Show every UCARP cluster: VIP, master zone and hypervisor, backups, last
    transition and alert.

    tgt
        The hypervisors to ask (``*``: every minion; those without the
        formula are skipped).

    CLI Example:

    .. code-block:: bash

        salt-run ucarp.status
        salt-run ucarp.status --out=json
    """
    replies = _local().cmd(tgt, "ucarp.status", timeout=timeout)
    clusters = {}
    for gz, entries in sorted(replies.items()):
        if not isinstance(entries, list):
            continue
        for entry in entries:
            info = clusters.setdefault(
                entry["cluster"],
                {"vip": entry["vip"], "vhid": entry["vhid"], "masters": [], "backups": [], "last_transition": None},
            )
            node = {"zone": entry["zone"], "gz": gz, "zone_state": entry.get("zone_state")}
            node["service"] = entry.get("service")
            (info["masters"] if entry.get("holds_vip") else info["backups"]).append(node)
    for name, info in clusters.items():
        masters = info.pop("masters")
        info["master"] = masters[0] if len(masters) == 1 else None
        state = _load(name) if CLUSTER_RE.match(name) else {}
        info["last_transition"] = state.get("last")
        if len(masters) != 1:
            info["alert"] = {"kind": "no-master" if not masters else "split-brain", "holders": masters}
        else:
            info["alert"] = state.get("alert")
    return clusters
