"""Small helpers for tests: bounded polling, never fixed sleeps."""

import time


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Fails the test with ``what`` and the last value seen when ``timeout``
    seconds pass first.  Bounded in time and in count.
    """
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


IMAGE = "d34c301e-10c3-11e4-9b79-5f67ca448df0"
UNKNOWN = "11111111-2222-3333-4444-555555555555"


def recipe_zone(alias, ip, **extra):
    """The original article's zone JSON (Listing 1), with TEST-NET-1 addresses."""
    payload = {
        "alias": alias,
        "hostname": alias,
        "brand": "joyent",
        "dns_domain": "",
        "dataset_uuid": IMAGE,
        "resolvers": ["192.0.2.53"],
        "max_physical_memory": 512,
        "nics": [
            {
                "nic_tag": "admin",
                "ip": ip,
                "netmask": "255.255.255.0",
                "gateway": "192.0.2.1",
                "primary": True,
            }
        ],
    }
    payload.update(extra)
    return payload
