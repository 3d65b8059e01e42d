{#- A UCARP transition reported by a hypervisor's ucarp beacon. Thin on
    purpose: the runner checks the sender against pillar before it trusts
    anything in the event (the tag and data are whatever the minion sent). #}
ucarp-transition:
  runner.ucarp.transition:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
