{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

include:
  - {{ tplroot }}.zones

{%- for zone in ucarp.zones %}

ucarp-package-installed-{{ zone.alias }}:
  zone_pkg.installed:
    - name: ucarp
    - zone: {{ zone.alias }}
    - require:
      - smartos_vm: ucarp-zone-present-{{ zone.alias }}
{%- endfor %}
