# Highly available SmartOS zones with UCARP: everything for this hypervisor.
include:
  - .zones
  - .package
  - .hooks
  - .config
  - .service
