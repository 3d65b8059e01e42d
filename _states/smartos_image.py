"""
Manage the images of a SmartOS global zone with ``imgadm``.

``present`` imports an image from the configured image sources when it is
not installed (``imgadm import``), as the recipe's first step does by hand;
``absent`` deletes one that no VM uses. They replace Salt's
``smartos.image_present`` / ``image_absent``, which Salt 3008 removed.

:depends: the ``imgadm`` execution module of this formula (``vmadm`` for
    ``absent``)
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


__virtualname__ = "smartos_image"


def __virtual__():
    if "imgadm.installed" in __salt__:
        return __virtualname__
    return (False, "smartos_image: needs the imgadm execution module of this formula (SmartOS global zone)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def present(name):
    """
    Make sure an image is installed, importing it from the image sources
    (``imgadm import``) when it is not.

    name
        The image's UUID.

    .. code-block:: yaml

        ucarp-image-present-d34c301e:
          smartos_image.present:
            - name: d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    _run()
    ret = _ret(name)
    try:
        if __salt__["imgadm.installed"](name):
            ret["comment"] = f"Image {name} is installed"
            return ret
        ret["changes"] = {"installed": {"old": False, "new": True}}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Image {name} would be imported from the image sources"
            return ret
        imported = __salt__["imgadm.import"](name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = f"Image {name} is not installed and could not be imported: {exc}"
        return ret
    log.info("smartos_image: imported %s", name)
    ret["changes"]["image"] = imported.get(name)
    ret["comment"] = f"Image {name} imported"
    return ret


def absent(name):
    """
    Make sure an image is not installed (``imgadm delete``). An image a VM
    still uses is an error, not deleted.

    name
        The image's UUID.

    .. code-block:: yaml

        old-image-absent:
          smartos_image.absent:
            - name: 163cd9fe-0c90-11e6-bd05-afd50e5961b6
    """
    _run()
    ret = _ret(name)
    try:
        if not __salt__["imgadm.installed"](name):
            ret["comment"] = f"Image {name} is not installed"
            return ret
        if "vmadm.list" not in __salt__:
            ret["result"] = False
            ret["comment"] = f"Image {name}: the vmadm execution module is needed to tell whether a VM uses it"
            return ret
        users = __salt__["vmadm.list"](search={"image_uuid": name}, order="alias", keyed=False)
        if users:
            ret["result"] = False
            ret["comment"] = f"Image {name} is used by {len(users)} VM(s) ({', '.join(u or '-' for u in users)})"
            return ret
        ret["changes"] = {"installed": {"old": True, "new": False}}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Image {name} would be deleted"
            return ret
        __salt__["imgadm.delete"](name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["comment"] = f"Image {name} deleted"
    return ret
