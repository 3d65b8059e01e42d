"""Simulated SMF: repository, svc.startd and the svcs/svcadm/svccfg/svcprop tools.

State lives under the zone's root (see ``smartos_sim.common.zone_path``):

- ``/etc/svc/repository.json``: the persistent repository (services,
  instances, property groups, running snapshots).
- ``/etc/svc/volatile/svc_sim.json``: runtime state (states, contracts,
  temporary overrides, pending administrative actions).
- ``/etc/svc/volatile/svc.startd.pid``: pid of the running restarter.
- ``/var/svc/log/<svc>:<inst>.log``: instance logs.
"""
