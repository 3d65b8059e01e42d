"""
Manage files inside SmartOS zones from the global zone, through ``zlogin``.

A file's content, mode and owner are compared with what the zone holds
(``zlogin.file_hash``, ``zlogin.file_stat``) and fixed with one atomic
``zlogin.file_write``. Content marked secret (or read from pillar with
``contents_pillar``) is never read back, shown in a diff, or logged.

:depends: the ``zlogin`` execution module of this formula
:platform: SmartOS global zone
"""

import difflib
import hashlib
import logging
import re

import salt.utils.data
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
        return (_packaged_begin or __utils__["run_cache.begin"])(__context__, owner)
    return None


__virtualname__ = "zone_file"

MODE_RE = re.compile(r"^[0-7]{4}$")
SECRET_NEW = "<secret>"
SECRET_DIFF = "<secret contents changed>"


def __virtual__():
    if "zlogin.run" in __salt__:
        return __virtualname__
    return (False, "zone_file: needs the zlogin execution module (SmartOS global zone)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _mode(mode):
    """A file mode as a 4-digit octal string, read as Salt's ``file`` states do.

    Salt's YAML loader reads ``0644`` as the integer 644: an integer's digits
    are the octal digits (644 -> ``"0644"``); ``"0o644"`` and ``"644"`` work too.
    """
    text = str(mode).strip().strip("'\"").replace("0o", "0")
    text = text.lstrip("0").zfill(4)
    if isinstance(mode, bool) or not MODE_RE.match(text):
        raise SaltInvocationError(f"zone_file: {mode!r} is not an octal file mode such as 0644")
    return text


def _wanted(contents, source, contents_pillar):
    """The wanted content as text, from exactly one of the three sources."""
    sources = (("contents", contents), ("source", source), ("contents_pillar", contents_pillar))
    given = [key for key, value in sources if value is not None]
    if len(given) != 1:
        raise SaltInvocationError(
            "zone_file: give exactly one of contents, source or contents_pillar"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if given == ["contents"]:
        return contents if isinstance(contents, str) else str(contents)
    if given == ["source"]:
        store = _run()
        fetched = store.setdefault("zone_file.sources", {}) if store is not None else {}
        if source not in fetched:  # the same hook goes to every zone: fetch it once per run
            fetched[source] = __salt__["cp.get_file_str"](source)
        text = fetched[source]
        if text is None or text is False:
            raise SaltInvocationError(f"zone_file: the source {source} was not found on the master")
        return text
    # The in-memory pillar holds plain values on every Salt version. Salt
    # 3008's pillar.get masks them ("**********") unless called with
    # unmask=True, a keyword that 3006 and 3007 refuse with a TypeError.
    text = salt.utils.data.traverse_dict_and_list(__pillar__, contents_pillar, None)
    if text is None or text == "" or text is False:
        raise SaltInvocationError(f"zone_file: the pillar key {contents_pillar} is missing or empty")
    return text if isinstance(text, str) else str(text)


def _diff(zone, name, text):
    try:
        old = __salt__["zlogin.file_read"](zone, name)
    except UnicodeDecodeError:
        return "<binary contents replaced>"
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), text.splitlines(keepends=True), fromfile=name, tofile=name
    )
    return "".join(lines)


def _changes(zone, name, text, mode, user, group, secret):
    """What would change, as ``{key: {"old", "new"}}`` (plus ``new``/``diff``)."""
    changes = {}
    current = __salt__["zlogin.file_hash"](zone, name)
    stat = None if current is None else __salt__["zlogin.file_stat"](zone, name)
    if current is None:
        changes["new"] = SECRET_NEW if secret else "file created"
    elif current != hashlib.sha256(text.encode("utf-8")).hexdigest():
        changes["diff"] = SECRET_DIFF if secret else _diff(zone, name, text)
    for key, want in (("mode", mode), ("user", user), ("group", group)):
        have = (stat or {}).get(key)
        if have != want:
            changes[key] = {"old": have, "new": want}
    return changes


def _refused(zone, name):
    """What the run would not read under the zone's root (it asked the zone instead)."""
    why = __salt__["zlogin.refused"](zone, name) if "zlogin.refused" in __salt__ else None
    return f" (not read from the global zone: {why}; read and written through zlogin)" if why else ""


def managed(
    name,
    zone,
    contents=None,
    source=None,
    contents_pillar=None,
    mode="0644",
    user="root",
    group="root",
    makedirs=False,
    secret=False,
):
    """
    Make sure a file inside a zone has this content, mode and owner.

    The file is written atomically (a 0600 temporary file renamed into place)
    with one ``zlogin.file_write``, which sets content, mode and owner at once.
    The content is written exactly as given (no newline is added).

    name
        Absolute path of the file inside the zone.

    zone
        The zone's UUID or alias.

    contents
        The file's text.

    source
        A ``salt://`` URL of the file on the master (read with
        ``cp.get_file_str``).

    contents_pillar
        A colon-separated pillar key (``ucarp:clusters:web:password``) holding
        the text; implies ``secret: True``.

        Give exactly one of ``contents``, ``source`` and ``contents_pillar``.

    mode
        Octal mode, ``"0644"`` by default; an integer from YAML (``0644`` is
        read as 644) is taken digit for digit.

    user, group
        Owner and group inside the zone (``root``).

    makedirs
        Create missing parent directories (no by default: an error).

    secret
        Never read back, show (in a diff) or log the content: changes only say
        ``<secret>`` / ``<secret contents changed>``.

    .. code-block:: yaml

        ucarp-config-file-managed-web:
          zone_file.managed:
            - name: /opt/local/etc/ucarp/web.conf
            - zone: zoneA
            - source: salt://ucarp/files/ucarp.conf
            - makedirs: True

        ucarp-password-file-managed-web:
          zone_file.managed:
            - name: /opt/local/etc/ucarp/web.pass
            - zone: zoneA
            - contents_pillar: ucarp:clusters:web:password
            - mode: "0600"
    """
    _run()
    ret = _ret(name)
    secret = bool(secret or contents_pillar)
    where = f"{name} in zone {zone}"
    try:
        mode = _mode(mode)
        text = _wanted(contents, source, contents_pillar)
        changes = _changes(zone, name, text, mode, user, group, secret)
        if not changes:
            ret["comment"] = f"File {where} is in the desired state" + _refused(zone, name)
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"File {where} would be {'created' if 'new' in changes else 'updated'}" + _refused(
                zone, name
            )
            return ret
        __salt__["zlogin.file_write"](zone, name, text, mode=mode, user=user, group=group, makedirs=makedirs)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    log.info("zone_file: wrote %s (%s)", where, ", ".join(sorted(changes)))
    ret["changes"] = changes
    ret["comment"] = f"File {where} {'created' if 'new' in changes else 'updated'}" + _refused(zone, name)
    return ret


FILE_KEYS = ("contents", "source", "contents_pillar", "mode", "user", "group", "secret")


def _planned(zone, path, spec):
    """``(text, mode, user, group, changes)`` of one file of ``files_managed``; raises naming it."""
    if not isinstance(spec, dict):
        raise SaltInvocationError(f"zone_file: files: {path}: give its contents, source or contents_pillar")
    unknown = sorted(set(spec) - set(FILE_KEYS))
    if unknown:
        raise SaltInvocationError(
            f"zone_file: files: {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})"
        )
    try:
        mode = _mode(spec.get("mode", "0644"))
        user, group = str(spec.get("user", "root")), str(spec.get("group", "root"))
        text = _wanted(spec.get("contents"), spec.get("source"), spec.get("contents_pillar"))
        secret = bool(spec.get("secret") or spec.get("contents_pillar"))
        changes = _changes(zone, path, text, mode, user, group, secret)
    except (CommandExecutionError, SaltInvocationError) as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    return text, mode, user, group, changes


def files_managed(name, zone, files, makedirs=False):
    """
    Make sure several files inside a zone have their content, mode and owner,
    and write all those that differ with one ``zlogin``.

    Each file is compared as ``zone_file.managed`` compares one. The files
    that differ are written together by ``zlogin.file_write_many``: all of
    them or, if one cannot be written, none (its error names it). A file
    given wrongly fails the state before anything is written.

    name
        A label for the group of files (it names nothing in the zone).

    zone
        The zone's UUID or alias.

    files
        ``{path: {...}}``: each file's absolute path inside the zone, with
        the keys of ``zone_file.managed``: one of ``contents``, ``source``
        and ``contents_pillar``, and ``mode``, ``user``, ``group``,
        ``secret``.

    makedirs
        Create missing parent directories (no by default: an error).

    ``changes`` holds each written file's changes under its path.

    .. code-block:: yaml

        ucarp-hook-files-managed-zoneA:
          zone_file.files_managed:
            - name: ucarp hooks
            - zone: zoneA
            - makedirs: True
            - files:
                /opt/local/lib/ucarp/vip-up:
                  source: salt://ucarp/files/vip-up
                  mode: '0755'
                /opt/local/lib/ucarp/vip-down:
                  source: salt://ucarp/files/vip-down
                  mode: '0755'
    """
    _run()
    ret = _ret(name)
    try:
        if not isinstance(files, dict) or not files:
            raise SaltInvocationError("zone_file: files: give {path: {contents|source|contents_pillar, mode, ...}}")
        plan = {path: _planned(zone, path, spec) for path, spec in files.items()}
        notes = {path: _refused(zone, path) for path in plan}
        refused = "".join(f"; {path}{note}" for path, note in notes.items() if note)
        todo = {path: planned for path, planned in plan.items() if planned[4]}
        where = f"in zone {zone}"
        if not todo:
            ret["comment"] = f"All {len(plan)} files {where} are in the desired state{refused}"
            return ret
        changes = {path: planned[4] for path, planned in todo.items()}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"{len(todo)} of {len(plan)} files {where} would be written: {', '.join(todo)}{refused}"
            return ret
        writes = {
            path: {"content": text, "mode": mode, "user": user, "group": group}
            for path, (text, mode, user, group, _changes_) in todo.items()
        }
        __salt__["zlogin.file_write_many"](zone, writes, makedirs=makedirs)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    log.info("zone_file: wrote %s %s", ", ".join(todo), where)
    ret["changes"] = changes
    ret["comment"] = f"{len(todo)} of {len(plan)} files {where} written: {', '.join(todo)}{refused}"
    return ret


def absent(name, zone):
    """
    Make sure a file inside a zone does not exist.

    name
        Absolute path of the file inside the zone.

    zone
        The zone's UUID or alias.

    .. code-block:: yaml

        ucarp-old-config-file-absent:
          zone_file.absent:
            - name: /opt/local/etc/ucarp/old.conf
            - zone: zoneA
    """
    _run()
    ret = _ret(name)
    where = f"{name} in zone {zone}"
    try:
        if __salt__["zlogin.file_stat"](zone, name) is None:
            ret["comment"] = f"File {where} is already absent"
            return ret
        changes = {"removed": {"old": name, "new": None}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"File {where} would be removed"
            return ret
        __salt__["zlogin.file_remove"](zone, name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = changes
    ret["comment"] = f"File {where} removed"
    return ret
