{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

include:
  - {{ tplroot }}.package
  - {{ tplroot }}.hooks
  - {{ tplroot }}.config

{%- for zone in ucarp.zones %}

ucarp-service-manifest-imported-{{ zone.alias }}:
  zone_svc.manifest_imported:
    - name: {{ ucarp.manifest_path }}
    - zone: {{ zone.alias }}
    - contents: {{ zone.manifest | json }}
    - service: svc:/network/ucarp
    - require:
      - zone_pkg: ucarp-package-installed-{{ zone.alias }}
      - zone_file: ucarp-method-files-managed-{{ zone.alias }}
      - zone_file: ucarp-hook-files-managed-{{ zone.alias }}
{%- endfor %}

{%- for node in ucarp.nodes %}

{#- A new method or agent needs the instance restarted (on the master that
    is a hand-over: no gap). New options, password or checks only need a
    refresh: the agent re-reads them and restarts ucarp if its options
    changed, handing the VIP over first on the master. #}
ucarp-service-running-{{ node.cluster }}-{{ node.alias }}:
  zone_svc.running:
    - name: {{ node.fmri }}
    - zone: {{ node.alias }}
    - require:
      - zone_svc: ucarp-service-manifest-imported-{{ node.alias }}
    - watch:
      - zone_file: ucarp-method-files-managed-{{ node.alias }}

ucarp-service-refreshed-{{ node.cluster }}-{{ node.alias }}:
  zone_svc.running:
    - name: {{ node.fmri }}
    - zone: {{ node.alias }}
    - reload: true
    - require:
      - zone_svc: ucarp-service-running-{{ node.cluster }}-{{ node.alias }}
    - watch:
      - zone_file: ucarp-config-file-managed-{{ node.cluster }}-{{ node.alias }}
      - zone_file: ucarp-passfile-managed-{{ node.cluster }}-{{ node.alias }}
      - zone_file: ucarp-checks-file-{{ 'managed' if node.checks else 'absent' }}-{{ node.cluster }}-{{ node.alias }}
{%- endfor %}
