{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

{%- for image in ucarp.images %}

ucarp-image-present-{{ image }}:
  smartos_image.present:
    - name: {{ image }}
{%- endfor %}

{%- for zone in ucarp.zones %}

ucarp-zone-present-{{ zone.alias }}:
  smartos_vm.present:
    - name: {{ zone.alias }}
    - config: {{ zone.config | json }}
    {%- if zone.image %}
    - require:
      - smartos_image: ucarp-image-present-{{ zone.image }}
    {%- endif %}
{%- endfor %}
