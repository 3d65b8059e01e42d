{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

include:
  - {{ tplroot }}.package

{#- Two groups of files per zone, each written with one zlogin: the method
    and agent a running instance has read (their change restarts it), and
    the hooks ucarp runs afresh at each transition (their change does not). #}
{%- for zone in ucarp.zones %}
{%-   for group, hooks in (('method', ucarp.restart_on), ('hook', ucarp.hooks | reject('in', ucarp.restart_on) | list)) %}

ucarp-{{ group }}-files-managed-{{ zone.alias }}:
  zone_file.files_managed:
    - name: {{ ucarp.lib }} ({{ group }} files)
    - zone: {{ zone.alias }}
    - makedirs: true
    - files:
{%-     for hook in hooks %}
        {{ hook }}:
          source: salt://{{ tplroot }}/files/{{ salt['file.basename'](hook) }}
          mode: '0755'
{%-     endfor %}
    - require:
      - zone_pkg: ucarp-package-installed-{{ zone.alias }}
{%-   endfor %}
{%- endfor %}
