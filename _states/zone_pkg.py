"""
Manage pkgin packages inside SmartOS zones from the global zone, through ``zlogin``.

:depends: the ``zlogin`` execution module of this formula
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


__virtualname__ = "zone_pkg"


def __virtual__():
    if "zlogin.run" in __salt__:
        return __virtualname__
    return (False, "zone_pkg: needs the zlogin execution module (SmartOS global zone)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def installed(name, zone):
    """
    Make sure a package is installed in a zone (``pkgin -y install``).

    An installed package is left at its version (no upgrade).

    name
        The pkgin package name (``ucarp``).

    zone
        The zone's UUID or alias.

    .. code-block:: yaml

        ucarp-package-installed-web:
          zone_pkg.installed:
            - name: ucarp
            - zone: zoneA
    """
    _run()
    ret = _ret(name)
    try:
        version = __salt__["zlogin.pkg_version"](zone, name)
        if version is not None:
            ret["comment"] = f"Package {name} {version} is installed in zone {zone}"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = {name: {"old": None, "new": "latest"}}
            ret["comment"] = f"Package {name} would be installed in zone {zone}"
            return ret
        done = __salt__["zlogin.pkg_install"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    log.info("zone_pkg: installed %s %s in zone %s", name, done["version"], zone)
    ret["changes"] = {name: {"old": None, "new": done["version"]}}
    ret["comment"] = f"Package {name} {done['version']} installed in zone {zone}"
    return ret


def removed(name, zone):
    """
    Make sure a package is not installed in a zone (``pkgin -y remove``).

    name
        The pkgin package name.

    zone
        The zone's UUID or alias.

    .. code-block:: yaml

        ucarp-package-removed-web:
          zone_pkg.removed:
            - name: ucarp
            - zone: zoneA
    """
    _run()
    ret = _ret(name)
    try:
        version = __salt__["zlogin.pkg_version"](zone, name)
        if version is None:
            ret["comment"] = f"Package {name} is not installed in zone {zone}"
            return ret
        changes = {name: {"old": version, "new": None}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"Package {name} {version} would be removed from zone {zone}"
            return ret
        __salt__["zlogin.pkg_remove"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    log.info("zone_pkg: removed %s %s from zone %s", name, version, zone)
    ret["changes"] = changes
    ret["comment"] = f"Package {name} {version} removed from zone {zone}"
    return ret
