"""A small web service for zones on the test bed: the application behind a VIP.

It serves the zone's hostname on port 8080 of the VIP, so only the zone
holding the VIP can run it, and a client sees which zone answered.  The
formula's reactor enables it with ``on_master`` and disables it with
``on_backup``; the integration tests, the demo and the reaction benchmark
install it in their zones.  Installed with ``bind="0.0.0.0"`` it listens on
every address of its zone instead, so it runs on every node at once (a hot
standby, as health checks need) and still answers on the VIP where it is.
"""

FMRI = "svc:/site/vipapp:default"
PORT = 8080
MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="vipapp">
  <service name="site/vipapp" type="service" version="1">
    <create_default_instance enabled="false"/>
    <exec_method type="method" name="start" exec="/opt/local/lib/vipapp" timeout_seconds="30"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="30"/>
  </service>
</service_bundle>
"""
METHOD = """#!/bin/sh
# A web service on {bind}: on the VIP, only the zone holding it can bind.
mkdir -p /var/tmp/vipapp && hostname > /var/tmp/vipapp/index.html
cd /var/tmp/vipapp || exit 1
/usr/bin/python3 -m http.server {port} --bind {bind} </dev/null >/dev/null 2>&1 &
"""


def install(gz, uuid, vip, bind=None):
    """Install the service in a zone, imported and disabled; raise on failure.

    It binds ``bind`` when given (``"0.0.0.0"``: every address of the zone,
    so it can run before the zone holds the VIP), else only the VIP.
    """
    steps = (
        ("mkdir -p /opt/local/lib && cat > /opt/local/lib/vipapp && chmod 755 /opt/local/lib/vipapp",
         METHOD.format(port=PORT, bind=bind or vip)),
        ("cat > /var/tmp/vipapp.xml && svccfg import /var/tmp/vipapp.xml", MANIFEST),
    )  # fmt: skip
    for command, body in steps:
        proc = gz.zlogin(uuid, command, stdin=body)
        if proc.returncode != 0:
            raise RuntimeError(f"installing the web service in zone {uuid}: {proc.stderr.strip()}")


def answer(bed, client, vip, timeout=2):
    """What a client host gets from the service on the VIP, or None."""
    code = f"import urllib.request as u; print(u.urlopen('http://{vip}:{PORT}/', timeout={timeout}).read().decode())"
    proc = bed.in_host(client, "/usr/bin/python3", "-c", code)
    return proc.stdout.strip() if proc.returncode == 0 else None
