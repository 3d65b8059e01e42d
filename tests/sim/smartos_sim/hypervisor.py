"""A reboot of a simulated hypervisor, as SmartOS reboots one.

``python3 -m smartos_sim.hypervisor reboot`` in a global zone's environment
(``$SMARTOS_SIM_ROOT``): every running zone shuts down cleanly, all at once
(each as ``vmadm stop`` does it: SMF stops its services, a zone still up
after 60 s is halted), then the zones whose ``autoboot`` is true boot again
(a zone that was stopped on purpose has it false). ``autoboot`` itself does
not change. The bed's ``GlobalZone.reboot`` wraps it and also stops and
starts the global zone's salt-minion when a test runs one.
"""

import sys
import threading
import time

from . import gz, vmadm, vmobj, zone
from .common import ToolError


def _running():
    return [uuid for uuid in gz.vm_uuids() if zone.init_pid(uuid)]


def shutdown():
    """Stop every running zone cleanly, in parallel; ``{uuid: clean?}``."""
    results = {}

    def stop(uuid):
        results[uuid] = vmadm.stop_zone(uuid, force=False)

    threads = [threading.Thread(target=stop, args=(uuid,)) for uuid in _running()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def boot():
    """Boot the zones whose ``autoboot`` is true; the UUIDs booted."""
    booted = []
    for uuid in gz.vm_uuids():
        with gz.locked():
            vm = gz.load_vm(uuid)
            unbootable = vm is None or vm.get("transition") in ("provisioning", "failed")
            if unbootable or not vm.get("autoboot", True) or zone.init_pid(uuid):
                continue
            vm.pop("transition", None)  # a stop the reboot cut short
            zone.boot(vm)
            vm["boot_timestamp"] = vmobj.now()
            gz.save_vm(vm)
        booted.append(uuid)
    return booted


def main(argv):
    if argv != ["reboot"]:
        raise ToolError("usage: python3 -m smartos_sim.hypervisor reboot", 2)
    started = time.monotonic()
    for uuid, clean in sorted(shutdown().items()):
        print(f"{uuid}: {'shut down' if clean else 'halted after the stop timeout'}")
    for uuid in boot():
        print(f"{uuid}: booted (autoboot)")
    print(f"rebooted in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    from .cli import main as cli_main

    sys.exit(cli_main("hypervisor"))
