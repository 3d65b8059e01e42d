{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

{%- for zone in ucarp.zones %}

ucarp-zone-present-{{ zone.alias }}:
  smartos_vm.present:
    - name: {{ zone.alias }}
    - config: {{ zone.config | json }}
{%- endfor %}
