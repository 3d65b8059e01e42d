"""Simulated ``imgadm``: the images installed in a global zone, and its sources.

A fresh hypervisor has no image and one source, ``https://images.smartos.org``
(imgadm's default); ``imagesource`` says what each source serves. Output,
messages (``imgadm <cmd>: error (<Code>): <message>``) and exit statuses are
those of smartos-live's ``src/img`` (``cli.js``, ``errors.js``): an image that
is not installed exits 3, every other failure 1.
"""

import json
import re
import sys

from . import gz, imagesource
from .common import ToolError

USAGE = """Usage: imgadm [<options>] <command> [<args>...]

    imgadm sources [-j] [-v] [-a <url> [-t <type>] [-f]] [-d <url>]
    imgadm avail [-j] [-H]
    imgadm show <uuid>
    imgadm list [-j] [-H]
    imgadm get [-P <pool>] <uuid>
    imgadm import [-q] [-P <pool>] [-S <url>] <uuid>
    imgadm delete [-P <pool>] <uuid>"""
COLUMNS = ("uuid", "name", "version", "os", "type", "pub")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SOURCE_TYPES = ("imgapi", "docker", "dsapi")


def error(command, code, message, status=1):
    return ToolError(f"imgadm {command}: error ({code}): {message}", status)


def _split(args, flags=(), with_value=()):
    """Flags (``-x``, ``-x value``) and positional arguments."""
    found, rest = {}, []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg in with_value:
            if not args:
                raise ToolError(f"imgadm: error (Usage): option {arg} requires an argument", 1)
            found.setdefault(arg, []).append(args.pop(0))
        elif arg in flags:
            found[arg] = True
        elif arg.startswith("-") and arg != "-":
            raise ToolError(f'imgadm: error (UnknownOption): unknown option: "{arg}"', 1)
        else:
            rest.append(arg)
    return found, rest


def _one_uuid(command, rest):
    if len(rest) != 1:
        raise error(command, "Usage", "incorrect number of args")
    if not UUID_RE.match(rest[0]):
        raise error(command, "Usage", f"invalid image-id arg: {json.dumps(rest[0])}")
    return rest[0]


def _record(manifest, source=None):
    record = {"manifest": manifest, "zpool": "zones"}
    if source:
        record["source"] = source
    return record


def _table(rows, header):
    rows = [
        {
            "uuid": m["uuid"],
            "name": m.get("name", ""),
            "version": m.get("version", ""),
            "os": m.get("os", ""),
            "type": m.get("type", ""),
            "pub": (m.get("published_at") or "")[:10],
        }
        for m in rows
    ]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    if header:
        print("  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip())


def _installed_source(uuid):
    try:
        return gz.read_json(f"{gz.root()}/images/{uuid}.source")
    except (FileNotFoundError, ValueError):
        return None


def do_list(args):
    found, _rest = _split(args, ("-j", "--json", "-H"))
    manifests = gz.images()
    if "-j" in found or "--json" in found:
        print(json.dumps([_record(m, _installed_source(m["uuid"])) for m in manifests], indent=2))
    else:
        _table(manifests, "-H" not in found)
    return 0


def do_get(args):
    _found, rest = _split(args, (), ("-P",))
    uuid = _one_uuid("get", rest)
    manifest = gz.image(uuid)
    if manifest is None:
        raise error("get", "ImageNotInstalled", f'image "{uuid}" was not found on zpool "zones"', 3)
    print(json.dumps(_record(manifest, _installed_source(uuid)), indent=2))
    return 0


def _configured(command):
    items = gz.sources()
    if not items:
        raise error(command, "NoSources", "imgadm has no configured sources")
    return items


def _offers(command, sources):
    """``[(source url, manifest)]`` of every source, in order; a source that
    does not answer is an error naming it."""
    out = []
    for source in sources:
        offered = imagesource.offered(source["url"])
        if offered is None:
            raise error(
                command,
                "SourcePing",
                f'unexpected ping error with image source "{source["url"]}" ({source["type"]}): getaddrinfo ENOTFOUND',
            )
        out.extend((source["url"], m) for m in offered)
    return out


def do_avail(args):
    found, _rest = _split(args, ("-j", "--json", "-H"))
    offered = [m for _url, m in _offers("avail", _configured("avail"))]
    if "-j" in found or "--json" in found:
        print(json.dumps([_record(m) for m in offered], indent=2))
    else:
        _table(offered, "-H" not in found)
    return 0


def do_show(args):
    _found, rest = _split(args)
    uuid = _one_uuid("show", rest)
    for _url, manifest in _offers("show", _configured("show")):
        if manifest["uuid"] == uuid:
            print(json.dumps(manifest, indent=2))
            return 0
    raise error("show", "ActiveImageNotFound", f'an active image "{uuid}" was not found in image sources')


def do_import(args):
    found, rest = _split(args, ("-q", "--quiet", "--zstream"), ("-P", "-S", "--source"))
    uuid = _one_uuid("import", rest)
    manifest = gz.image(uuid)
    if manifest is not None:
        print(f"Image {uuid} ({manifest['name']} {manifest['version']}) is already installed, skipping")
        return 0
    urls = found.get("-S", []) + found.get("--source", [])
    sources = [{"url": u, "type": "imgapi"} for u in urls] or _configured("import")
    for url, offered in _offers("import", sources):
        if offered["uuid"] == uuid and offered.get("state", "active") == "active":
            title = f"{uuid} ({offered['name']}@{offered['version']})"
            print(f'Importing {title} from "{url}"')
            with gz.locked():
                gz.install_image(offered)
                gz.write_json(f"{gz.root()}/images/{uuid}.source", url)
            print(f"Imported image {title}")
            return 0
    raise error("import", "ActiveImageNotFound", f'an active image "{uuid}" was not found in image sources')


def do_delete(args):
    _found, rest = _split(args, (), ("-P",))
    uuid = _one_uuid("delete", rest)
    manifest = gz.image(uuid)
    if manifest is None:
        raise error("delete", "ImageNotInstalled", f'image "{uuid}" was not found on zpool "zones"', 3)
    users = [u for u in gz.vm_uuids() if (gz.load_vm(u) or {}).get("image_uuid") == uuid]
    if users:
        more = f" and {len(users) - 1} others..." if len(users) > 1 else ""
        raise error("delete", "ImageHasDependentClones", f'image "{uuid}" has dependent clones: {users[0]}{more}')
    with gz.locked():
        gz.remove_image(uuid)
    print(f"Deleted image {uuid}")
    return 0


def do_sources(args):
    found, rest = _split(args, ("-j", "--json", "-v", "--verbose", "-f", "--force"), ("-a", "-d", "-t", "--type"))
    if rest:
        raise error("sources", "Usage", f"unexpected args: {' '.join(rest)}")
    if "-a" in found and "-d" in found:
        raise error("sources", "Usage", 'cannot specify more than one of "-a", "-d", "-e", and "-c"')
    items = gz.sources()
    if "-a" in found:
        url = found["-a"][0]
        kind = (found.get("-t") or found.get("--type") or ["imgapi"])[0]
        if kind not in SOURCE_TYPES:
            raise error("sources", "Usage", f'invalid source type: "{kind}"')
        title = f'"{kind}" image source "{url}"'
        if any(s["url"] == url for s in items):
            print(f"Already have {title}, no change")
            return 0
        if not ("-f" in found or "--force" in found):
            _offers("sources", [{"url": url, "type": kind}])  # ping it
        with gz.locked():
            gz.save_sources([*items, {"url": url, "type": kind}])
        print(f"Added {title}")
        return 0
    if "-d" in found:
        url = found["-d"][0]
        gone = [s for s in items if s["url"] == url]
        if not gone:
            print(f'Do not have image source "{url}", no change')
            return 0
        with gz.locked():
            gz.save_sources([s for s in items if s["url"] != url])
        for source in gone:
            print(f'Deleted "{source["type"]}" image source "{url}"')
        return 0
    if "-j" in found or "--json" in found:
        print(json.dumps(items, indent=2))
    elif "-v" in found or "--verbose" in found:
        width = max([3] + [len(s["url"]) for s in items])
        print(f"{'URL'.ljust(width)}  TYPE    INSECURE")
        for source in items:
            print(f"{source['url'].ljust(width)}  {source['type'].ljust(6)}  false")
    else:
        for source in items:
            print(source["url"])
    return 0


def main(argv):
    args = list(argv)
    if not args or args[0] in ("help", "-h", "--help"):
        print(USAGE)
        return 0 if args else 1
    command, rest = args[0], args[1:]
    handlers = {
        "list": do_list,
        "get": do_get,
        "import": do_import,
        "avail": do_avail,
        "show": do_show,
        "sources": do_sources,
        "delete": do_delete,
    }
    if command not in handlers:
        print(f'imgadm: error (UnknownCommand): unknown command: "{command}"', file=sys.stderr)
        return 1
    return handlers[command](rest)
