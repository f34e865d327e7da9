"""Checks of the Helm chart's rendered manifests that the Kubernetes schemas cannot make.

Run by test/deploy/helm-check.sh with the tools venv's Python (PyYAML comes with kubernetes-validate):

  helm-assert.py split RENDERED CORE_OUT      all documents but the ServiceMonitor into CORE_OUT (for
                                              kubernetes-validate, whose schemas have no CRDs)
  helm-assert.py check RENDERED KEY=VALUE...  the assertions below; KEY=VALUE are the expectations of
                                              the scenario (replicas, namespace, secret, monitor,
                                              grace_ms, env.NAME)
  helm-assert.py docs CHART                   every value of values.yaml has a row in the README's
                                              Values table, with the same default for single values

Exits 1 with one line per failed assertion.
"""
import base64
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def one(docs, kind, name_suffix=None):
    found = [d for d in docs if d['kind'] == kind and (name_suffix is None or d['metadata']['name'].endswith(name_suffix))]
    if not check(len(found) == 1, f'expected one {kind}{" named *" + name_suffix if name_suffix else ""}, found {len(found)}'):
        raise SystemExit('\n'.join(failures))
    return found[0]


def selects(selector, labels):
    """A matchLabels-style selector (a plain map, as a Service's) against a label map."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_map(container):
    return {e['name']: e for e in container.get('env', [])}


def config_env_names():
    """The environment variables of the service's settings, from the config schema (one source)."""
    schema = (ROOT / 'src/config/schema.ts').read_text()
    return set(re.findall(r"'((?:STREAMREC|KAFKA)_[A-Z0-9_]+)'", schema))


def split(rendered, out):
    docs = load(rendered)
    core = [d for d in docs if d['kind'] != 'ServiceMonitor']
    Path(out).write_text(yaml.safe_dump_all(core, sort_keys=False))
    print(' '.join(sorted(d['kind'] for d in core)))


def check_service_monitor(sm, headless, client):
    """The ServiceMonitor against the fields of monitoring.coreos.com/v1 that it uses (its CRD is not
    among kubernetes-validate's schemas): known keys only, so a misspelt field fails here."""
    check(sm['apiVersion'] == 'monitoring.coreos.com/v1', f"ServiceMonitor apiVersion {sm['apiVersion']}")
    check(set(sm) <= {'apiVersion', 'kind', 'metadata', 'spec'}, f'ServiceMonitor top-level keys {sorted(sm)}')
    spec = sm['spec']
    check(set(spec) <= {'selector', 'namespaceSelector', 'endpoints', 'jobLabel', 'targetLabels', 'podTargetLabels'}, f'ServiceMonitor spec keys {sorted(spec)}')
    check(set(spec['selector']) == {'matchLabels'}, 'ServiceMonitor selector is matchLabels only')
    match = spec['selector']['matchLabels']
    check(selects(match, headless['metadata']['labels']), 'ServiceMonitor selects the headless Service (its endpoints include not-ready pods)')
    check(not selects(match, client['metadata']['labels']), 'ServiceMonitor must not also select the client Service (each pod would be scraped twice)')
    check(spec.get('namespaceSelector', {}).get('matchNames') == [headless['metadata'].get('namespace', NAMESPACE)], 'ServiceMonitor namespaceSelector is the release namespace')
    endpoints = spec['endpoints']
    check(len(endpoints) == 1, f'ServiceMonitor has {len(endpoints)} endpoints')
    ep = endpoints[0]
    check(set(ep) <= {'port', 'path', 'scheme', 'interval', 'scrapeTimeout'}, f'ServiceMonitor endpoint keys {sorted(ep)}')
    check(ep.get('path') == '/metrics', f"ServiceMonitor path {ep.get('path')}")
    check(ep.get('scheme') == 'http', f"ServiceMonitor scheme {ep.get('scheme')}")
    check(ep.get('port') in [p.get('name') for p in headless['spec']['ports']], f"ServiceMonitor port {ep.get('port')} is not a named port of the headless Service")
    for field in ('interval', 'scrapeTimeout'):
        check(re.fullmatch(r'([0-9]+(ms|s|m|h))+', str(ep.get(field, ''))) is not None, f'ServiceMonitor {field} {ep.get(field)!r} is not a Prometheus duration')
    # /metrics is public in streamrec (src/api/ops.ts PUBLIC_ROUTES): no credentials to configure.
    check(not any(k in ep for k in ('bearerTokenSecret', 'authorization', 'basicAuth')), 'ServiceMonitor carries credentials /metrics does not need')


NAMESPACE = 'default'


def run_check(rendered, expectations):
    global NAMESPACE
    exp = dict(e.split('=', 1) for e in expectations)
    NAMESPACE = exp.get('namespace', 'default')
    docs = load(rendered)
    kinds = sorted(d['kind'] for d in docs)
    sts = one(docs, 'StatefulSet')
    headless = one(docs, 'Service', '-headless')
    client = next((d for d in docs if d['kind'] == 'Service' and d is not headless), None)
    check(client is not None, 'no client Service')
    pdb = one(docs, 'PodDisruptionBudget')
    job = one(docs, 'Job')
    spec = sts['spec']
    pod = spec['template']['spec']
    pod_labels = spec['template']['metadata']['labels']
    (container,) = pod['containers']
    env = env_map(container)

    # The StatefulSet and its Services.
    check(spec['serviceName'] == headless['metadata']['name'], f"serviceName {spec['serviceName']} is not the headless Service {headless['metadata']['name']}")
    check(headless['spec'].get('clusterIP') == 'None', 'the headless Service has clusterIP None')
    check(headless['spec'].get('publishNotReadyAddresses') is True, 'the headless Service publishes not-ready pods (owners restoring a partition still answer forwarded queries)')
    check(spec['podManagementPolicy'] == 'Parallel', f"podManagementPolicy {spec['podManagementPolicy']}")
    check(spec['replicas'] == int(exp.get('replicas', '1')), f"replicas {spec['replicas']}, expected {exp.get('replicas', '1')}")
    check(selects(spec['selector']['matchLabels'], pod_labels), 'the StatefulSet selector matches its pod labels')
    for svc in (headless, client):
        check(selects(svc['spec']['selector'], pod_labels), f"Service {svc['metadata']['name']} selects the pods")
    job_labels = job['spec']['template']['metadata']['labels']
    for what, selector in (('client Service', client['spec']['selector']), ('headless Service', headless['spec']['selector']), ('PodDisruptionBudget', pdb['spec']['selector']['matchLabels']), ('StatefulSet', spec['selector']['matchLabels'])):
        check(not selects(selector, job_labels), f"the {what}'s selector must not match the hook Job's pod")
    check(selects(pdb['spec']['selector']['matchLabels'], pod_labels), 'the PodDisruptionBudget selects the pods')
    check(pdb['spec'].get('maxUnavailable') == 1 and 'minAvailable' not in pdb['spec'], f"PodDisruptionBudget {pdb['spec']}")
    http = [p for p in container['ports'] if p.get('name') == 'http']
    check(len(http) == 1, 'the container has one port named http')
    port = http[0]['containerPort'] if http else None
    for svc in (headless, client):
        check(any(p.get('targetPort') in ('http', port) for p in svc['spec']['ports']), f"Service {svc['metadata']['name']} targets the http port")

    # Identity and addresses.
    check(container.get('args') == ['start'], f"the pods run `streamrec start`, not {container.get('args')}")
    inst = env.get('STREAMREC_INSTANCE_ID', {})
    check(inst.get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') == 'metadata.name', 'STREAMREC_INSTANCE_ID comes from metadata.name')
    names = [e['name'] for e in container['env']]
    url = env.get('STREAMREC_API_ADVERTISED_URL', {}).get('value', '')
    want = f"http://$(POD_NAME).{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
    check(url == want, f'STREAMREC_API_ADVERTISED_URL {url!r}, expected {want!r}')
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    check('POD_NAME' in names and names.index('POD_NAME') < names.index('STREAMREC_API_ADVERTISED_URL'), 'POD_NAME is defined before STREAMREC_API_ADVERTISED_URL')
    check(env.get('POD_NAME', {}).get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') == 'metadata.name', 'POD_NAME comes from metadata.name')
    check(env.get('STREAMREC_API_HOST', {}).get('value') == '0.0.0.0', 'STREAMREC_API_HOST is 0.0.0.0')
    check(env.get('STREAMREC_API_PORT', {}).get('value') == str(port), f"STREAMREC_API_PORT {env.get('STREAMREC_API_PORT')} is not the container port {port}")
    check(len(names) == len(set(names)), f'duplicate environment variables: {sorted(n for n in set(names) if names.count(n) > 1)}')
    known = config_env_names()
    unknown = [n for n in names if n not in known and n != 'POD_NAME']
    check(not unknown, f'environment variables that are no setting of src/config/schema.ts: {unknown}')
    for key, value in exp.items():
        if key.startswith('env.'):
            got = env.get(key[4:], {}).get('value')
            check(got == value, f'{key[4:]} is {got!r}, expected {value!r}')

    # Probes (src/api/app.ts: /health liveness, /ready readiness).
    for probe, path in (('livenessProbe', '/health'), ('readinessProbe', '/ready'), ('startupProbe', '/health')):
        get = container.get(probe, {}).get('httpGet', {})
        check(get.get('path') == path and get.get('port') in ('http', port), f'{probe} is GET {get.get("path")} on {get.get("port")}, expected {path} on http')

    # Shutdown: Kubernetes must not SIGKILL before shutdown.graceMs is over.
    grace_ms = int(env.get('STREAMREC_SHUTDOWN_GRACE_MS', {}).get('value', '20000'))
    check(grace_ms == int(exp.get('grace_ms', '20000')), f'STREAMREC_SHUTDOWN_GRACE_MS {grace_ms}')
    tgps = pod.get('terminationGracePeriodSeconds', 30)
    check(tgps * 1000 > grace_ms, f'terminationGracePeriodSeconds {tgps} is not above shutdown.graceMs {grace_ms} ms')

    # State on the per-pod volume.
    claims = [c['metadata']['name'] for c in spec.get('volumeClaimTemplates', [])]
    state_dir = env.get('STREAMREC_STATE_DIR', {}).get('value')
    mounts = {m['mountPath']: m['name'] for m in container.get('volumeMounts', [])}
    check(state_dir is not None and mounts.get(state_dir) in claims, f'STREAMREC_STATE_DIR {state_dir} is not the mount path of a volumeClaimTemplate ({mounts}, claims {claims})')
    check(not any(v.get('persistentVolumeClaim') for v in pod.get('volumes', [])), 'no shared PersistentVolumeClaim (model versions travel through Kafka)')

    # Security: non-root, read-only root, every write goes to a mount.
    psc, csc = pod.get('securityContext', {}), container.get('securityContext', {})
    check(psc.get('runAsNonRoot') is True, 'pods run as non-root')
    check(csc.get('readOnlyRootFilesystem') is True, 'the root filesystem is read-only')
    check(csc.get('allowPrivilegeEscalation') is False, 'no privilege escalation')
    check('/tmp' in mounts, '/tmp is a mount (the root filesystem is read-only)')
    check(pod.get('automountServiceAccountToken') is False, 'no service account token (streamrec never calls the Kubernetes API)')

    # The root API key from a Secret.
    ref = env.get('STREAMREC_API_ROOT_KEY', {}).get('valueFrom', {}).get('secretKeyRef', {})
    secret_name = exp.get('secret')
    secrets = [d for d in docs if d['kind'] == 'Secret']
    if secret_name:
        check(ref.get('name') == secret_name, f"the root key comes from {ref.get('name')}, expected the existing Secret {secret_name}")
        check(not secrets, 'no Secret is generated when auth.existingSecret is set')
    else:
        check(len(secrets) == 1 and ref.get('name') == secrets[0]['metadata']['name'], 'the root key comes from the generated Secret')
        if secrets:
            data = secrets[0].get('data', {})
            check(ref.get('key') in data, f"the generated Secret has no key {ref.get('key')}")
            key = base64.b64decode(data.get(ref.get('key'), '')).decode()
            check(len(key) >= 32 and key.isalnum(), 'the generated root key is 32+ alphanumeric characters')

    # The topics hook Job.
    hooks = set(job['metadata'].get('annotations', {}).get('helm.sh/hook', '').split(','))
    check(hooks == {'pre-install', 'pre-upgrade'}, f'the topics Job hooks are {sorted(hooks)}, expected pre-install,pre-upgrade')
    (jc,) = job['spec']['template']['spec']['containers']
    group = env.get('STREAMREC_GROUP', {}).get('value')
    check(jc.get('args') == ['topics', 'create', '--group', group], f"the Job runs {jc.get('args')}, expected topics create --group {group}")
    check(job['spec']['template']['spec'].get('restartPolicy') == 'Never', 'the Job restartPolicy is Never')
    jenv = env_map(jc)
    # Topic settings and the Kafka connection must be the pods' own: every setting the pods get from
    # config/extraEnv, the Job gets the same way.
    per_pod = {'POD_NAME', 'STREAMREC_INSTANCE_ID', 'STREAMREC_API_ADVERTISED_URL', 'STREAMREC_API_HOST', 'STREAMREC_API_PORT', 'STREAMREC_STATE_DIR', 'STREAMREC_API_ROOT_KEY'}
    for name, e in env.items():
        if name not in per_pod:
            check(jenv.get(name) == e, f'the Job has {name}={jenv.get(name)}, the pods {e}')
    check('STREAMREC_API_ROOT_KEY' not in jenv, 'the Job does not get the root key (it needs none)')
    check(jc.get('securityContext', {}).get('readOnlyRootFilesystem') is True, 'the Job runs with a read-only root filesystem')

    # The ServiceMonitor.
    monitors = [d for d in docs if d['kind'] == 'ServiceMonitor']
    if exp.get('monitor') == 'true':
        check(len(monitors) == 1, f'{len(monitors)} ServiceMonitors, expected 1')
        if monitors:
            check_service_monitor(monitors[0], headless, client)
    else:
        check(not monitors, 'no ServiceMonitor unless serviceMonitor.enabled')

    if failures:
        print('\n'.join(f'helm-assert: {f}' for f in failures))
        return 1
    print(f"helm-assert: {len(docs)} manifests ({', '.join(kinds)}) passed")
    return 0


def flatten(values, prefix=''):
    """values.yaml as (path, value) leaves; a map of settings (config) is one leaf per setting."""
    for key, value in values.items():
        path = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            yield from flatten(value, path + '.')
        else:
            yield path, value


def table_rows(readme):
    """The Values table: first-cell names -> default cell. A row may name several values, e.g.
    `probes.startup.periodSeconds` / `timeoutSeconds`: an undotted name after a dotted one is its
    sibling."""
    text = readme.split('## Values', 1)[1].split('\n## ', 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) != 3 or not cells[0].startswith('`'):
            continue
        names = re.findall(r'`([^`]+)`', cells[0])
        parent = names[0].rsplit('.', 1)[0] + '.' if '.' in names[0] else ''
        for i, name in enumerate(names):
            full = name if '.' in name or i == 0 else parent + name
            rows[full] = (cells[1], len(names))
    return rows


def yaml_default(value):
    if value == '':
        return '`""`'
    if isinstance(value, (list, dict)):
        return '`' + yaml.safe_dump(value, default_flow_style=True).strip() + '`'
    if isinstance(value, bool):
        return f'`{str(value).lower()}`'
    return f'`{value}`'


def check_docs(chart):
    values = yaml.safe_load((Path(chart) / 'values.yaml').read_text())
    rows = table_rows((Path(chart) / 'README.md').read_text())
    for path, value in flatten(values):
        parts = path.split('.')
        # The row of the value itself, else of its nearest parent (e.g. `resources` for resources.limits.memory).
        row = next((rows[p] for p in ('.'.join(parts[:n]) for n in range(len(parts), 0, -1)) if p in rows), None)
        if not check(row is not None, f'values.yaml {path} has no row in the README Values table'):
            continue
        default, names = row
        if path in rows and names == 1 and not isinstance(value, dict):
            want = yaml_default(value) if not isinstance(value, str) or value == '' else f'`{value}`'
            want_alt = f'`"{value}"`'
            check(default.startswith(want) or default.startswith(want_alt), f'README Values table: {path} default {default!r}, values.yaml {want}')
    documented = set(rows) - {p for p, _ in flatten(values)}
    prefixes = {'.'.join(p.split('.')[:n]) for p, _ in flatten(values) for n in range(1, len(p.split('.')) + 1)}
    check(documented <= prefixes, f'README Values table rows for no value of values.yaml: {sorted(documented - prefixes)}')
    if failures:
        print('\n'.join(f'helm-assert: {f}' for f in failures))
        return 1
    print(f'helm-assert: {len(list(flatten(values)))} values of values.yaml documented in README.md')
    return 0


if __name__ == '__main__':
    if sys.argv[1] == 'split':
        split(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == 'docs':
        sys.exit(check_docs(sys.argv[2]))
    elif sys.argv[1] == 'check':
        sys.exit(run_check(sys.argv[2], sys.argv[3:]))
    else:
        raise SystemExit(f'unknown command {sys.argv[1]}')
