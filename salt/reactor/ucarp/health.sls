{#- A health change reported by a hypervisor's ucarp beacon. Thin on purpose:
    the runner checks the sender against pillar before it trusts anything in
    the event. #}
ucarp-health:
  runner.ucarp.health:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
