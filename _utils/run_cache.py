"""
What one state run, or one call, has learnt about this global zone's zones.

A state run asks the same questions of every zone: which VMs there are and
in what state, what SMF says of each instance.  Asked once per run for all
the zones (one ``vmadm lookup -j``, one ``svcs -Z``) the answers cost a
fixed few processes, not a few per state.  They are kept here, in a dict in
``__context__``, and only for as long as they are true:

- a state run opens its store with ``begin(__context__, __instance_id__)``.
  Salt gives each run its own copy of ``__context__``, so the store dies
  with the run; the run's id guards against a store left by another run;
- an execution function that asks many questions (``ucarp.status``) opens
  one for its own call with ``scope``;
- outside a store (an ad hoc ``salt gz1 vmadm.list``, the beacon in the
  minion's long-lived process) nothing is cached: every call asks again;
- whatever changes a zone drops what it changed (``drop``).

Pure functions, no Salt calls, and no callbacks: a function called through
``__utils__`` runs in the utils' loader context, where a callback from an
execution module would not find its own dunders.  A module keeps a value
with ``store = current(__context__)`` and ``store[name] = ...``.
"""

import contextlib

KEY = "ucarp.run"


def begin(context, owner):
    """The store of the state run ``owner`` (its ``__instance_id__``), opened on first use."""
    store = context.get(KEY)
    if not isinstance(store, dict) or store.get("owner") != owner:
        store = context[KEY] = {"owner": owner}
    return store


def current(context):
    """The open store, or None outside a run."""
    store = context.get(KEY)
    return store if isinstance(store, dict) else None


@contextlib.contextmanager
def scope(context):
    """A store for one call, unless a run's store is open already (then that one)."""
    if current(context) is not None:
        yield context[KEY]
        return
    store = context[KEY] = {"owner": object()}
    try:
        yield store
    finally:
        if context.get(KEY) is store:
            del context[KEY]


def drop(context, *names):
    """Forget ``names`` in the open store (nothing outside one)."""
    store = current(context)
    for name in names:
        if store is not None:
            store.pop(name, None)
