"""What the image sources of the test bed serve (no network: a catalogue).

A source is known by its URL. ``https://images.smartos.org`` (imgadm's
default source, configured on a fresh hypervisor) serves the original
recipe's standard64 image and a newer base64; any other URL answers as an
unreachable source would. The catalogue stands in for the IMGAPI servers
SmartOS imports from.
"""

STANDARD64 = {
    "v": 2,
    "uuid": "d34c301e-10c3-11e4-9b79-5f67ca448df0",
    "owner": "00000000-0000-0000-0000-000000000000",
    "name": "standard64",
    "version": "14.2.0",
    "state": "active",
    "disabled": False,
    "public": True,
    "published_at": "2014-07-24T17:46:23Z",
    "type": "zone-dataset",
    "os": "smartos",
    "description": "A 64-bit SmartOS image with just essential packages "
    "installed. Ideal for users who are comfortable with setting up their "
    "own environment and tools.",
    "urn": "sdc:sdc:standard64:14.2.0",
    "requirements": {"min_platform": {"7.0": "20141030T081701Z"}},
}
BASE64 = {
    **STANDARD64,
    "uuid": "1d05e788-5409-11eb-b12f-037bd7fee4ee",
    "name": "base-64-lts",
    "version": "20.4.0",
    "published_at": "2021-01-11T17:31:41Z",
    "description": "A 64-bit SmartOS image with just essential packages installed.",
    "urn": None,
    "requirements": {},
}
CATALOGUE = {"https://images.smartos.org": [STANDARD64, BASE64]}


def reachable(url):
    return url.rstrip("/") in CATALOGUE


def offered(url):
    """The manifests a source offers (an unreachable one: None)."""
    return CATALOGUE.get(url.rstrip("/"))
