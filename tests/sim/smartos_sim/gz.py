"""A simulated global zone: its state directory, its lock, its VM store.

``$SMARTOS_SIM_ROOT`` names the directory (created on first use)::

    images/<uuid>.json     installed image manifests (imgadm); none at first
    sources.json           imgadm's image sources (images.smartos.org at first)
    vms/<uuid>.json        VM configurations (vmadm)
    zones/<uuid>/          a zone's own files: root/{etc,usr,opt,var} are the
                           upper layers of its private /etc, /usr, /opt and
                           its /var; init.pid names its running init
    server.json            this hypervisor's identity

Several global zones (several roots) share one simulated LAN (see ``lan``).
"""

import os

from .common import ToolError

# Every tool imports this module on every call: what only a few functions
# need (json, fcntl, uuid) is imported there. ``bin/zlogin`` (a shell
# script) reads this layout itself: vms/<uuid>.json, zones/<uuid>/init.pid.

DEFAULT_ROOT = "/var/tmp/smartos-sim/gz"

DEFAULT_SOURCES = [{"url": "https://images.smartos.org", "type": "imgapi"}]  # imgadm's default


def root():
    """This global zone's state directory, created on first use."""
    path = os.path.abspath(os.environ.get("SMARTOS_SIM_ROOT") or DEFAULT_ROOT)
    if not os.path.isdir(os.path.join(path, "vms")):
        import uuid as uuidlib

        # A fresh hypervisor: no image installed, imgadm's default source.
        for sub in ("images", "vms", "zones"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        sources = os.path.join(path, "sources.json")
        if not os.path.exists(sources):
            write_json(sources, DEFAULT_SOURCES)
        server = os.path.join(path, "server.json")
        if not os.path.exists(server):
            write_json(
                server,
                {
                    "uuid": str(uuidlib.uuid4()),
                    "hostname": os.path.basename(path),
                    "nic_tags": ["admin", "external"],
                },
            )
    return path


def server():
    return read_json(os.path.join(root(), "server.json"))


def write_json(path, data, mode=0o644):
    """Write ``data`` as JSON to ``path`` atomically."""
    import json

    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path):
    import json

    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class locked:  # noqa: N801 - used as ``with gz.locked():``
    """Serialise the commands that change this global zone."""

    def __enter__(self):
        import fcntl

        self.fd = os.open(os.path.join(root(), ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def vm_path(uuid):
    return os.path.join(root(), "vms", uuid + ".json")


def zone_dir(uuid):
    return os.path.join(root(), "zones", uuid)


def vm_uuids():
    names = os.listdir(os.path.join(root(), "vms"))
    return sorted(n[:-5] for n in names if n.endswith(".json") and len(n) == 41)


def load_vm(uuid):
    """The stored configuration of a VM, or ``None``."""
    try:
        return read_json(vm_path(uuid))
    except FileNotFoundError:
        return None


def save_vm(vm):
    write_json(vm_path(vm["uuid"]), vm)


def image(uuid):
    try:
        return read_json(os.path.join(root(), "images", uuid + ".json"))
    except (FileNotFoundError, OSError):
        return None


def images():
    folder = os.path.join(root(), "images")
    return [read_json(os.path.join(folder, n)) for n in sorted(os.listdir(folder)) if n.endswith(".json")]


def install_image(manifest):
    write_json(os.path.join(root(), "images", manifest["uuid"] + ".json"), manifest)


def remove_image(uuid):
    for suffix in (".json", ".source"):
        try:
            os.unlink(os.path.join(root(), "images", uuid + suffix))
        except FileNotFoundError:
            pass


def sources():
    """The configured image sources: ``[{url, type}]``, in order."""
    try:
        return read_json(os.path.join(root(), "sources.json"))
    except FileNotFoundError:
        return []


def save_sources(items):
    write_json(os.path.join(root(), "sources.json"), items)


def not_configured(uuid):
    return ToolError(f"zoneadm: {uuid}: No such zone configured", 1)


def starttime(pid):
    """The kernel start time of ``pid``, or None if it is not a live process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def init_pid(uuid):
    """The host PID of a running zone's init, or None."""
    try:
        with open(os.path.join(zone_dir(uuid), "init.pid")) as fh:
            pid, start = fh.read().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(pid) if starttime(int(pid)) == start else None
