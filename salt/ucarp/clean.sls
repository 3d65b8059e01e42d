# Remove what pillar no longer asks for: the SMF instances, options files,
# passfiles and transition logs of clusters a zone of this hypervisor no
# longer serves (the hooks and the package go once no cluster is left in a
# zone). Zones themselves are kept: they may hold the application's data;
# delete them with vmadm.delete when you mean it.
ucarp-clean-pruned:
  ucarp.pruned:
    - name: ucarp
