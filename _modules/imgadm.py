"""
Manage the images of a SmartOS global zone with ``imgadm``.

A zone's image must be installed before ``vmadm create`` can use it: on a
fresh hypervisor there is none, and ``imgadm import`` fetches it from the
configured image sources. Salt 3008 removed ``smartos_imgadm``; this module
takes its place, and on Salt 3006 and 3007 it answers the calls Salt's own
``smartos`` states make (``imgadm.list``, ``get``, ``import``, ``avail``,
``sources``, ``source_add``, ``source_delete``, ``delete``,
``docker_to_uuid``) with the results of Salt's module, so those states load
and work where Salt's module does not (it loads only in a real global zone).

- reads are ``imgadm ... -j`` JSON; a failure raises
  ``CommandExecutionError`` with imgadm's own message, never an
  ``{"Error": ...}`` dict that a caller could mistake for a result;
- commands run as argument lists; an image is named by UUID (or, where
  imgadm takes one, a docker ``repo:tag``), anything else is refused before
  any command runs.

:depends: the ``imgadm`` command
:platform: SmartOS global zone
"""

import json
import logging
import re

import salt.utils.path
import salt.version
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "imgadm"
__func_alias__ = {"list_": "list", "import_": "import"}

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOCKER_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SOURCE_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$|^file:///[A-Za-z0-9._~/-]+$")
SOURCE_TYPES = ("imgapi", "docker", "dsapi", "file")
INSTALLED = "imgadm.installed"


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"imgadm: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if salt.utils.path.which("imgadm"):
        return __virtualname__
    return (False, "imgadm: the imgadm command was not found (it exists in a SmartOS global zone)")


def _imgadm(*args):
    """Run imgadm; a non-zero exit raises CommandExecutionError with its message
    (``imgadm import: error (ActiveImageNotFound): ...``)."""
    res = __salt__["cmd.run_all"](["imgadm", *args], python_shell=False, ignore_retcode=True)
    if res["retcode"] != 0:
        message = (res.get("stderr") or res.get("stdout") or "").strip()
        if not message.startswith("imgadm"):  # imgadm's own messages name the command already
            message = f"imgadm {args[0]}: {message or 'failed with exit status ' + str(res['retcode'])}"
        raise CommandExecutionError(message)
    return res


def _json(*args):
    return json.loads(_imgadm(*args)["stdout"] or "[]")


def _uuid(image, docker=False):
    if isinstance(image, str) and UUID_RE.match(image):
        return image.lower()
    if docker and isinstance(image, str) and DOCKER_RE.match(image):
        return image
    what = "an image UUID or a docker repo:tag" if docker else "an image UUID"
    raise SaltInvocationError(f"imgadm: {image!r} is not {what}")


def _installed():
    """Every installed image (``imgadm list -j``), cached for this run."""
    if INSTALLED not in __context__:
        __context__[INSTALLED] = _json("list", "-j")
    return __context__[INSTALLED]


def _forget():
    __context__.pop(INSTALLED, None)


def _docker_name(manifest):
    """``repo:tag`` of a docker image's manifest, or None."""
    tags = manifest.get("tags") or {}
    repo = tags.get("docker:repo")
    tag = next((key.rsplit(":", 1)[1] for key, on in tags.items() if key.startswith("docker:tag:") and on), None)
    return f"{repo}:{tag}" if repo and tag else None


def _describe(image, verbose):
    """One image as Salt's own ``imgadm.list`` showed it: ``name@version
    [published]``, or with ``verbose`` a dict; None for a docker layer
    without repo and tag."""
    manifest = image.get("manifest") or {}
    name, description = manifest.get("name"), manifest.get("description")
    if name == "docker-layer":
        name = _docker_name(manifest)
        if name is None:
            return None
        description = f"Docker image imported from {name} on {manifest.get('published_at')}."
    if not verbose:
        return f"{name}@{manifest.get('version')} [{manifest.get('published_at')}]"
    return {
        "name": name,
        "version": manifest.get("version"),
        "os": manifest.get("os"),
        "description": description,
        "published": manifest.get("published_at"),
        "source": image.get("source"),
    }


def _listing(images, verbose):
    out = {}
    for image in images:
        manifest = image.get("manifest") or {}
        described = _describe(image, verbose)
        if manifest.get("uuid") and described is not None:
            out[manifest["uuid"]] = described
    return out


def list_(verbose=False):
    """
    List the installed images: ``{uuid: "name@version [published]"}``.

    verbose
        Each image as a dict: ``name``, ``version``, ``os``, ``description``,
        ``published``, ``source``.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.list
        salt gz1 imgadm.list verbose=True
    """
    return _listing(_installed(), verbose)


def installed(image):
    """
    Tell whether an image (UUID) is installed on this global zone.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.installed d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    wanted = _uuid(image)
    return any((i.get("manifest") or {}).get("uuid") == wanted for i in _installed())


def get(image):
    """
    Return an installed image (``imgadm get``: its manifest, zpool, source).

    image
        The image's UUID, or the ``repo:tag`` of an imported docker image.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.get d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    wanted = _uuid(image, docker=True)
    if not UUID_RE.match(wanted):
        found = docker_to_uuid(wanted)
        if found is None:
            raise CommandExecutionError(f"imgadm get: no installed docker image is {wanted}")
        wanted = found
    return json.loads(_imgadm("get", wanted)["stdout"])


def show(image):
    """
    Return an image's manifest from the image sources (``imgadm show``).

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.show d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    return json.loads(_imgadm("show", _uuid(image, docker=True))["stdout"])


def avail(search=None, verbose=False):
    """
    List the images the sources offer (``imgadm avail -j``), public and
    enabled ones only, as ``imgadm.list`` shows installed ones.

    search
        Only images whose name contains this text.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.avail
        salt gz1 imgadm.avail base64 verbose=True
    """
    offered = [
        image
        for image in _json("avail", "-j")
        if not (image.get("manifest") or {}).get("disabled")
        and (image.get("manifest") or {}).get("public", True)
        and (not search or str(search) in str((image.get("manifest") or {}).get("name", "")))
    ]
    return _listing(offered, verbose)


def import_(image, verbose=False):
    """
    Import an image from the image sources (``imgadm import``).

    Returns ``{uuid: description}`` of the installed image, as Salt's own
    module did; an image that is already installed is not an error.

    image
        The image's UUID, or a docker ``repo:tag``.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.import d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    wanted = _uuid(image, docker=True)
    try:
        _imgadm("import", "-q", wanted)
    finally:
        _forget()
    log.info("imgadm: imported %s", wanted)
    found = wanted if UUID_RE.match(wanted) else docker_to_uuid(wanted)
    if found is None:
        raise CommandExecutionError(f"imgadm import: {wanted} was imported but is not in imgadm list")
    return {found: _describe(get(found), verbose)}


def delete(image):
    """
    Remove an installed image (``imgadm delete``); returns the UUIDs removed.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.delete d34c301e-10c3-11e4-9b79-5f67ca448df0
    """
    try:
        res = _imgadm("delete", _uuid(image))
    finally:
        _forget()
    return [m.group(1) for m in re.finditer(r"Deleted image ([0-9a-fA-F-]{36})", res["stdout"] + res["stderr"])]


def docker_to_uuid(image):
    """
    Return the UUID of an image given by UUID (as it is) or by the docker
    ``repo:tag`` it was imported from (None if none is installed).

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.docker_to_uuid busybox:latest
    """
    if isinstance(image, str) and UUID_RE.match(image):
        return image
    if not (isinstance(image, str) and DOCKER_RE.match(image)):
        return None
    for candidate in _installed():
        manifest = candidate.get("manifest") or {}
        if manifest.get("name") == "docker-layer" and _docker_name(manifest) == image:
            return manifest.get("uuid")
    return None


def sources(verbose=False):
    """
    List the image sources: their URLs, or with ``verbose`` ``{url: {type, ...}}``.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.sources
    """
    found = {src["url"]: {k: v for k, v in src.items() if k != "url"} for src in _json("sources", "-j")}
    return found if verbose else list(found)


def _source(source):
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        raise SaltInvocationError(f"imgadm: {source!r} is not an image source URL (https://..., file:///...)")
    return source


def source_add(source, source_type="imgapi"):
    """
    Add an image source; returns the sources.

    source_type
        ``imgapi`` (default), ``docker``, ``dsapi`` or ``file``.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.source_add https://images.smartos.org
    """
    if source_type not in SOURCE_TYPES:
        raise SaltInvocationError(f"imgadm: source_type is one of {', '.join(SOURCE_TYPES)}, not {source_type!r}")
    _imgadm("sources", "-a", _source(source), "-t", source_type)
    return sources()


def source_delete(source):
    """
    Remove an image source; returns the sources left.

    CLI Example:

    .. code-block:: bash

        salt gz1 imgadm.source_delete https://images.smartos.org
    """
    _imgadm("sources", "-d", _source(source))
    return sources()
