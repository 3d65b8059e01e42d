"""
Manage SMF services inside SmartOS zones from the global zone, through ``zlogin``.

Manifests are files in the zone (managed by ``zone_file.managed``) imported
with ``svccfg import``; instances are enabled, cleared out of maintenance,
restarted (``watch``), disabled and deleted with ``svcadm`` and ``svccfg``.
Errors carry the ``svcs -x`` explanation the execution module adds.

:depends: the ``zlogin`` execution module and the ``zone_file`` state module of this formula
:platform: SmartOS global zone
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils.run_cache import begin as _packaged_begin
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_begin = None

log = logging.getLogger(__name__)


def _run():
    """Open this state run's store of what the zones said (``_utils/run_cache.py``)."""
    owner = globals().get("__instance_id__")  # Salt sets it for each state run
    if owner:
        (_packaged_begin or __utils__["run_cache.begin"])(__context__, owner)


__virtualname__ = "zone_svc"

UP = ("online", "degraded")


def __virtual__():
    if "zlogin.run" in __salt__:
        return __virtualname__
    return (False, "zone_svc: needs the zlogin execution module (SmartOS global zone)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, exc):
    ret["result"] = False
    ret["comment"] = str(exc)
    return ret


def manifest_imported(name, zone, contents=None, source=None, service=None):
    """
    Put an SMF manifest in a zone and import it (``svccfg import``).

    The manifest is managed as ``zone_file.managed`` does (mode 0444,
    root:root, parent directories created) and imported when it changed, or
    when ``service`` is not known to SMF in the zone. Import never changes
    whether an existing instance is enabled.

    name
        Absolute path of the manifest inside the zone
        (``/opt/local/lib/svc/manifest/ucarp.xml``).

    zone
        The zone's UUID or alias.

    contents
        The manifest's XML.

    source
        A ``salt://`` URL of the manifest on the master. Give ``contents`` or
        ``source``.

    service
        An FMRI the manifest defines (``svc:/network/ucarp:web``); when
        ``svcs`` does not know it, the manifest is imported even if the file
        did not change. Name an instance the manifest creates: ``svcs`` lists
        instances only, so a service without instances always looks unknown.

    .. code-block:: yaml

        ucarp-smf-manifest-imported-web:
          zone_svc.manifest_imported:
            - name: /opt/local/lib/svc/manifest/ucarp-web.xml
            - zone: zoneA
            - source: salt://ucarp/files/ucarp-web.xml
            - service: svc:/network/ucarp:web
    """
    _run()
    ret = _ret(name)
    filed = __states__["zone_file.managed"](
        name, zone, contents=contents, source=source, mode="0444", user="root", group="root", makedirs=True
    )
    ret["changes"] = dict(filed["changes"])
    if filed["result"] is False:
        ret["result"] = False
        ret["comment"] = filed["comment"]
        return ret
    try:
        unknown = bool(service) and not __salt__["zlogin.svc_instances"](zone, service)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    if not ret["changes"] and not unknown:
        ret["comment"] = f"Manifest {name} in zone {zone} is in the desired state and imported"
        return ret
    why = "it changed" if ret["changes"] else f"{service} is not known to SMF"
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"]["imported"] = True
        ret["comment"] = f"Manifest {name} in zone {zone} would be imported ({why})"
        return ret
    try:
        __salt__["zlogin.svc_import"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("zone_svc: imported %s in zone %s (%s)", name, zone, why)
    ret["changes"]["imported"] = True
    ret["comment"] = f"Manifest {name} in zone {zone} imported ({why})"
    return ret


def _start(zone, name, state, enable):
    """Bring an instance online from ``state``; raises with ``svcs -x`` on failure."""
    if state.rstrip("*") == "maintenance":
        __salt__["zlogin.svc_clear"](zone, name, wait=False)
    __salt__["zlogin.svc_enable"](zone, name, temporary=not enable)


def running(name, zone, enable=True, reload=False):
    """
    Make sure an SMF instance in a zone is enabled and online.

    A disabled or offline instance is enabled (waiting until it is online);
    one in maintenance is cleared and enabled. An instance that does not come
    online is an error carrying the ``svcs -x`` explanation.

    name
        The instance's FMRI (``svc:/network/ucarp:web``).

    zone
        The zone's UUID or alias.

    enable
        Enable it for good (default); ``False`` enables it only until the
        zone reboots (``svcadm enable -t``).

    reload
        What a ``watch`` does to an online instance: restart it (default),
        or, with ``True``, refresh it (``svcadm refresh``: its refresh method
        re-reads what changed, nothing stops).

    .. code-block:: yaml

        ucarp-service-running-web:
          zone_svc.running:
            - name: svc:/network/ucarp:web
            - zone: zoneA
            - watch:
              - zone_file: ucarp-config-file-managed-web
    """
    _run()
    ret = _ret(name)
    try:
        state = __salt__["zlogin.svc_state"](zone, name)
        if state is None:
            ret["result"] = False
            ret["comment"] = f"Service {name} is not known to SMF in zone {zone} (import its manifest first)"
            return ret
        if state in UP:
            ret["comment"] = f"Service {name} is {state} in zone {zone}"
            return ret
        changes = {"state": {"old": state, "new": "online"}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"Service {name} in zone {zone} would be started (it is {state})"
            return ret
        _start(zone, name, state, enable)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("zone_svc: started %s in zone %s (it was %s)", name, zone, state)
    ret["changes"] = changes
    ret["comment"] = f"Service {name} started in zone {zone}"
    return ret


def dead(name, zone):
    """
    Make sure an SMF instance in a zone is disabled and stopped.

    An instance SMF does not know has nothing to stop: that is success.

    name
        The instance's FMRI (``svc:/network/ucarp:web``).

    zone
        The zone's UUID or alias.

    .. code-block:: yaml

        ucarp-service-dead-web:
          zone_svc.dead:
            - name: svc:/network/ucarp:web
            - zone: zoneA
    """
    _run()
    ret = _ret(name)
    try:
        state = __salt__["zlogin.svc_state"](zone, name)
        if state is None:
            ret["comment"] = f"Service {name} is not known to SMF in zone {zone}: nothing to stop"
            return ret
        if state == "disabled":
            ret["comment"] = f"Service {name} is disabled in zone {zone}"
            return ret
        changes = {"state": {"old": state, "new": "disabled"}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"Service {name} in zone {zone} would be disabled (it is {state})"
            return ret
        __salt__["zlogin.svc_disable"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("zone_svc: disabled %s in zone %s", name, zone)
    ret["changes"] = changes
    ret["comment"] = f"Service {name} disabled in zone {zone}"
    return ret


def absent(name, zone):
    """
    Make sure a service or instance is not in a zone's SMF repository.

    Its instances are disabled (processes stopped) first, then it is deleted
    (``svccfg delete -f``).

    name
        The FMRI of an instance (``svc:/network/ucarp:web``) or of a service
        with all its instances (``svc:/network/ucarp``).

    zone
        The zone's UUID or alias.

    .. code-block:: yaml

        ucarp-service-absent-old:
          zone_svc.absent:
            - name: svc:/network/ucarp:old
            - zone: zoneA
    """
    _run()
    ret = _ret(name)
    try:
        found = __salt__["zlogin.svc_instances"](zone, name)
        if not found:
            ret["comment"] = f"Service {name} is not known to SMF in zone {zone}"
            return ret
        old = next(iter(found.values())) if len(found) == 1 else found
        changes = {"state": {"old": old, "new": None}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"Service {name} would be disabled and deleted from zone {zone}"
            return ret
        for fmri, state in found.items():
            if state != "disabled":
                __salt__["zlogin.svc_disable"](zone, fmri)
        __salt__["zlogin.svc_delete"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("zone_svc: deleted %s from zone %s", name, zone)
    ret["changes"] = changes
    ret["comment"] = f"Service {name} disabled and deleted from zone {zone}"
    return ret


# The states whose changes to a zone go through the zlogin module, which
# counts them (zlogin.fresh).
ZONE_STATES = ("zone_file", "zone_pkg", "zone_svc")


def _zone_changes_only():
    """Whether every state this one watches changes zones through ``zlogin``."""
    watched = (globals().get("__low__") or {}).get("watch") or []
    return bool(watched) and all(isinstance(w, dict) and set(w) <= set(ZONE_STATES) for w in watched)


def mod_watch(name, zone, sfun=None, **kwargs):
    """
    Restart (or refresh) an SMF instance in a zone when a state it watches changed.

    Called by Salt for the ``watch`` requisite, not directly. For
    ``zone_svc.running``: an online instance is restarted (waiting until it
    is online again), or refreshed with ``reload: true``; one that is not
    online is started as ``running`` does.
    An instance this run started after the watched states changed the zone
    (they are ``zone_file``, ``zone_pkg`` or ``zone_svc`` states, and nothing
    changed a zone since) is left as it is: it already runs with what
    they wrote.
    For ``zone_svc.dead`` the instance is made sure to be stopped.

    name
        The instance's FMRI.

    zone
        The zone's UUID or alias.

    sfun
        The state function that holds the ``watch`` (``running`` or ``dead``).

    .. code-block:: yaml

        ucarp-service-running-web:
          zone_svc.running:
            - name: svc:/network/ucarp:web
            - zone: zoneA
            - watch:
              - zone_file: ucarp-config-file-managed-web
    """
    _run()
    if sfun == "dead":
        return dead(name, zone)
    if sfun != "running":
        ret = _ret(name)
        ret["result"] = False
        ret["comment"] = f"Unable to trigger watch for zone_svc.{sfun}"
        return ret
    ret = _ret(name)
    try:
        state = __salt__["zlogin.svc_state"](zone, name)
        if state not in UP:
            return running(name, zone, enable=kwargs.get("enable", True))
        verb = "refreshed" if kwargs.get("reload") else "restarted"
        if _zone_changes_only() and __salt__["zlogin.fresh"](zone, name):
            ret["comment"] = (
                f"Service {name} in zone {zone} was started by this run after what it watches changed: not {verb}"
            )
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {verb: True}
            ret["comment"] = f"Service {name} in zone {zone} would be {verb}"
            return ret
        if kwargs.get("reload"):
            __salt__["zlogin.svc_refresh"](zone, name)
        else:
            __salt__["zlogin.svc_restart"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("zone_svc: %s %s in zone %s", verb, name, zone)
    ret["changes"] = {verb: True}
    ret["comment"] = f"Service {name} {verb} in zone {zone}"
    return ret
