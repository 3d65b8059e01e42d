{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

include:
  - {{ tplroot }}.package

{%- for zone in ucarp.zones %}
{%-   for hook in ucarp.hooks %}

ucarp-hook-file-managed-{{ zone.alias }}-{{ salt['file.basename'](hook) }}:
  zone_file.managed:
    - name: {{ hook }}
    - zone: {{ zone.alias }}
    - source: salt://{{ tplroot }}/files/{{ salt['file.basename'](hook) }}
    - mode: '0755'
    - makedirs: true
    - require:
      - zone_pkg: ucarp-package-installed-{{ zone.alias }}
{%-   endfor %}
{%- endfor %}
