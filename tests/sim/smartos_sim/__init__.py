"""A simulator of the SmartOS command line on Linux (the project's test bed).

Each simulated global zone keeps its state under ``$SMARTOS_SIM_ROOT``; zones
are Linux namespaces held by a small init process; the daemons inside them
(ucarp above all) are real. Only the Python standard library is used, so the
tools run under any Python 3.11 on the machine, inside zones as well; each
runs as ``python3 -IS`` (the caller's ``PYTHON*`` variables and site packages
play no part, as on SmartOS where these are not Python programs). ``zlogin``,
run once per zone by every ``ucarp.status``, is a POSIX shell script.
"""
