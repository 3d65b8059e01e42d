"""Fixtures shared by every test folder.

The SmartOS test bed (``tests/sim``) is importable as ``smartos_sim``.  Tests
that need root and network namespaces carry the ``root`` marker and skip,
with the reason, where those are missing.  Each test module that needs one
builds its own bed, so modules never share a LAN or addresses, and the bed is
always removed: on success, failure, Ctrl-C or SIGTERM.
"""

import logging
import os
import platform
import signal
import sys
import threading

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SIM_DIR = os.path.join(TESTS_DIR, "sim")
sys.path.insert(0, SIM_DIR)
sys.path.insert(0, TESTS_DIR)

from smartos_sim import bed as simbed  # noqa: E402

BED_UNAVAILABLE = simbed.unavailable()
MATRIX_TIERS = ("unit", "functional")


def pytest_configure(config):
    # pytest turns SIGINT into KeyboardInterrupt and still runs finalizers;
    # do the same for SIGTERM so an interrupted session cleans up too.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.default_int_handler)


LINGER_S = 15.0  # how long a thread still running after the session may take to end


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # Salt's log handlers flush once more at exit, after pytest has closed
    # the streams they wrote to: that is not a failure, and not worth a
    # traceback per record at the end of every run.
    logging.raiseExceptions = False
    # salt-factories' event listener can leave its (non-daemon) server
    # thread running after stop() ("let GC take care of it"): Python would
    # then wait for it for ever after the summary, and CI would run out of
    # time. The results are in; end the process once such a thread has had
    # its chance to finish.
    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in lingering:
        thread.join(LINGER_S / max(len(lingering), 1))
    if any(t.is_alive() for t in lingering):
        names = ", ".join(t.name for t in lingering if t.is_alive())
        sys.stderr.write(f"conftest: threads still running after the session ({names}): exiting anyway\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash.get(_EXIT_STATUS, 1))


def pytest_report_header(config):
    import salt.version

    return f"salt {salt.version.__version__} (python {platform.python_version()}, {sys.executable})"


def pytest_collection_modifyitems(config, items):
    for item in items:
        # The unit and functional tiers run on every Salt version of the
        # matrix (``-m matrix``); integration tests opt in with the marker.
        if os.path.relpath(str(item.path), TESTS_DIR).split(os.sep)[0] in MATRIX_TIERS:
            item.add_marker(pytest.mark.matrix)
    if BED_UNAVAILABLE:
        skip = pytest.mark.skip(reason=BED_UNAVAILABLE)
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def bed():
    """A test bed for one test module (its own LAN, hypervisors and zones),
    removed whatever happens: pass, failure, Ctrl-C or SIGTERM."""
    if BED_UNAVAILABLE:
        pytest.skip(BED_UNAVAILABLE)
    simbed.sweep()
    the_bed = simbed.Bed()
    try:
        yield the_bed
    finally:
        the_bed.destroy()
