{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import ucarp with context %}

include:
  - {{ tplroot }}.zones

{#- salt-run ucarp.rollout <cluster> writes one cluster's files alone. #}
{%- set rollout = salt['config.get']('ucarp_rollout') %}
{%- for node in ucarp.nodes if not rollout or node.cluster == rollout %}

{#- A running cluster's password, VIP or VHID changes on every node at
    once or not at all: salt-run ucarp.rollout does the former. #}
ucarp-identity-kept-{{ node.cluster }}-{{ node.alias }}:
  ucarp.identity_kept:
    - name: {{ node.cluster }}
    - zone: {{ node.alias }}
    - conf_path: {{ node.conf_path }}
    - conf: {{ node.conf | json }}
    - pass_path: {{ node.pass_path }}
    - password_key: {{ node.password_key }}
    - fmri: {{ node.fmri }}
    {#- Before the zone: a new VIP would change its allowed_ips. #}
    - require_in:
      - smartos_vm: ucarp-zone-present-{{ node.alias }}

ucarp-config-file-managed-{{ node.cluster }}-{{ node.alias }}:
  zone_file.managed:
    - name: {{ node.conf_path }}
    - zone: {{ node.alias }}
    - contents: {{ node.conf | json }}
    - mode: '0644'
    - makedirs: true
    - require:
      - smartos_vm: ucarp-zone-present-{{ node.alias }}
      - ucarp: ucarp-identity-kept-{{ node.cluster }}-{{ node.alias }}

{#- The password is read from pillar by the state itself: it never appears
    in the rendered SLS, in state output or on a command line. #}
ucarp-passfile-managed-{{ node.cluster }}-{{ node.alias }}:
  zone_file.managed:
    - name: {{ node.pass_path }}
    - zone: {{ node.alias }}
    - contents_pillar: {{ node.password_key }}
    - mode: '0600'
    - makedirs: true
    - require:
      - smartos_vm: ucarp-zone-present-{{ node.alias }}
      - ucarp: ucarp-identity-kept-{{ node.cluster }}-{{ node.alias }}

ucarp-checks-file-{{ 'managed' if node.checks else 'absent' }}-{{ node.cluster }}-{{ node.alias }}:
{%-   if node.checks %}
  zone_file.managed:
    - name: {{ node.checks_path }}
    - zone: {{ node.alias }}
    - contents: {{ node.checks | json }}
    - mode: '0644'
    - makedirs: true
{%-   else %}
  zone_file.absent:
    - name: {{ node.checks_path }}
    - zone: {{ node.alias }}
{%-   endif %}
    - require:
      - smartos_vm: ucarp-zone-present-{{ node.alias }}
{%- endfor %}
