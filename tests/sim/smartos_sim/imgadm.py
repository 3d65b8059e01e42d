"""Simulated ``imgadm``: the images installed in a global zone.

The standard64 image of the original recipe is installed from the start.
There is no image source on the test bed, so ``import`` of anything not
installed fails as imgadm does when no source has the image.
"""

import json
import sys

from . import gz
from .common import ToolError

USAGE = """Usage: imgadm [<options>] <command> [<args>...]

    imgadm list [-j] [-H]
    imgadm get <uuid>
    imgadm import <uuid>"""
COLUMNS = ("uuid", "name", "version", "os", "type", "pub")


def _row(manifest):
    return {
        "uuid": manifest["uuid"],
        "name": manifest.get("name", ""),
        "version": manifest.get("version", ""),
        "os": manifest.get("os", ""),
        "type": manifest.get("type", ""),
        "pub": (manifest.get("published_at") or "")[:10],
    }


def do_list(args):
    as_json = "-j" in args or "--json" in args
    header = "-H" not in args
    manifests = gz.images()
    if as_json:
        print(json.dumps([{"manifest": m, "zpool": "zones", "source": None} for m in manifests], indent=2))
        return 0
    rows = [_row(m) for m in manifests]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    if header:
        print("  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip())
    return 0


def _not_installed(uuid):
    return ToolError(f'imgadm get: error (ImageNotInstalled): image "{uuid}" was not found on zpool "zones"', 1)


def do_get(args):
    uuids = [a for a in args if not a.startswith("-")]
    if len(uuids) != 1:
        raise ToolError("imgadm get: error (Usage): incorrect number of args", 1)
    manifest = gz.image(uuids[0]) if len(uuids[0]) == 36 else None
    if manifest is None:
        raise _not_installed(uuids[0])
    print(json.dumps({"manifest": manifest, "zpool": "zones", "source": None}, indent=2))
    return 0


def do_import(args):
    uuids = [a for a in args if not a.startswith("-")]
    if len(uuids) != 1:
        raise ToolError("imgadm import: error (Usage): incorrect number of args", 1)
    manifest = gz.image(uuids[0]) if len(uuids[0]) == 36 else None
    if manifest is not None:
        print(f"Image {manifest['uuid']} ({manifest['name']}@{manifest['version']}) already installed")
        return 0
    raise ToolError(
        f'imgadm import: error (ActiveImageNotFound): an active image "{uuids[0]}" was not found in image sources', 1
    )


def main(argv):
    args = list(argv)
    if not args or args[0] in ("help", "-h", "--help"):
        print(USAGE)
        return 0 if args else 1
    command, rest = args[0], args[1:]
    handlers = {"list": do_list, "get": do_get, "import": do_import}
    if command not in handlers:
        print(f'imgadm: error (UnknownCommand): unknown command: "{command}"', file=sys.stderr)
        return 1
    return handlers[command](rest)
