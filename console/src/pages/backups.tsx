// Backup definitions: create (namespaces/labels, PV mode, policy, destination), run now,
// pause and resume.

import { useState } from 'preact/hooks';

import { all, call, type Json, post, remove } from '../api';
import {
  Action,
  Check,
  Field,
  Form,
  IfRole,
  Link,
  Loading,
  navigate,
  Page,
  parseMap,
  Select,
  Table,
  list,
  useLoad,
} from '../ui';

export function BackupsPage() {
  const loaded = useLoad(async () => {
    const [backups, clusters, policies, destinations] = await Promise.all([
      all('/v1/backups'),
      all('/v1/clusters'),
      all('/v1/policies'),
      all('/v1/destinations'),
    ]);
    return { backups, clusters, policies, destinations };
  });
  return (
    <Page title="Backups">
      <Loading loaded={loaded}>
        {({ backups, clusters, policies, destinations }) => {
          const nameOf = (items: Json[], id: string | null | undefined) =>
            id ? (items.find((x) => x.id === id)?.name ?? id) : '—';
          return (
            <>
              <IfRole role="admin">
                <CreateBackup clusters={clusters} policies={policies} destinations={destinations} done={loaded.reload} />
              </IfRole>
              <Table
                label="Backups"
                rows={backups}
                empty="No backup yet."
                columns={[
                  { label: 'Name', cell: (b: Json) => b.name },
                  { label: 'Cluster', cell: (b: Json) => nameOf(clusters, b.clusterId) },
                  {
                    label: 'Selection',
                    cell: (b: Json) =>
                      b.selection?.fullCluster
                        ? 'whole cluster'
                        : [
                            (b.selection?.namespaces ?? []).join(', '),
                            Object.entries(b.selection?.labels ?? {})
                              .map(([k, v]) => `${k}=${v}`)
                              .join(','),
                          ]
                            .filter(Boolean)
                            .join(' · ') || 'everything',
                  },
                  { label: 'PV mode', cell: (b: Json) => b.pvMode ?? 'none' },
                  { label: 'Policy', cell: (b: Json) => nameOf(policies, b.policyId) },
                  {
                    label: 'Destination',
                    cell: (b: Json) => b.effectiveDestination?.name ?? nameOf(destinations, b.destinationId),
                  },
                  { label: 'Paused', cell: (b: Json) => (b.paused ? 'paused' : 'no') },
                  {
                    label: 'Actions',
                    cell: (b: Json) => (
                      <div class="row-actions">
                        <IfRole role="operator">
                          <Action
                            label="Run now"
                            name={`Run ${b.name} now`}
                            action={async () => {
                              const job = await post(`/v1/backups/${b.id}/run`);
                              navigate(`/jobs/${job.id}`);
                            }}
                          />
                          <Action
                            label={b.paused ? 'Resume' : 'Pause'}
                            name={`${b.paused ? 'Resume' : 'Pause'} ${b.name}`}
                            action={async () => {
                              await call('POST', `/v1/backups/${b.id}/${b.paused ? 'resume' : 'pause'}`, {});
                              loaded.reload();
                            }}
                          />
                        </IfRole>
                        <Link to={`/recovery-points?definitionId=${b.id}`}>Points</Link>
                        <IfRole role="admin">
                          <Action
                            label="Delete"
                            name={`Delete backup ${b.name}`}
                            danger
                            action={async () => {
                              await remove(`/v1/backups/${b.id}`);
                              loaded.reload();
                            }}
                          />
                        </IfRole>
                      </div>
                    ),
                  },
                ]}
              />
            </>
          );
        }}
      </Loading>
    </Page>
  );
}

function CreateBackup(props: { clusters: Json[]; policies: Json[]; destinations: Json[]; done: () => void }) {
  const [name, setName] = useState('');
  const [clusterId, setClusterId] = useState(props.clusters[0]?.id ?? '');
  const [fullCluster, setFullCluster] = useState(false);
  const [namespaces, setNamespaces] = useState('');
  const [labels, setLabels] = useState('');
  const [pvMode, setPvMode] = useState('none');
  const [policyId, setPolicyId] = useState('');
  const [destinationId, setDestinationId] = useState('');
  const none = { value: '', label: '—' };
  return (
    <Form
      label="Create a backup"
      submit="Create backup"
      action={async () => {
        const selection = fullCluster
          ? { fullCluster: true }
          : { namespaces: list(namespaces), labels: parseMap(labels) };
        await post('/v1/backups', {
          name: name.trim(),
          clusterId: clusterId || props.clusters[0]?.id,
          selection,
          pvMode,
          policyId: policyId || null,
          destinationId: destinationId || null,
        });
        setName('');
        props.done();
      }}
    >
      <Field label="Backup name" value={name} onInput={setName} required />
      <Select
        label="Cluster"
        value={clusterId}
        onChange={setClusterId}
        options={props.clusters.map((c) => ({ value: c.id, label: c.name }))}
      />
      <Check label="Whole cluster" checked={fullCluster} onChange={setFullCluster} />
      {!fullCluster && (
        <>
          <Field label="Namespaces" value={namespaces} onInput={setNamespaces} hint="Comma-separated" />
          <Field label="Labels" value={labels} onInput={setLabels} hint="key=value, comma-separated (ANDed)" />
        </>
      )}
      <Select
        label="PV mode"
        value={pvMode}
        onChange={setPvMode}
        options={[
          { value: 'none', label: 'Resources only' },
          { value: 'snapshot', label: 'Snapshot' },
          { value: 'snapshotAndCopy', label: 'Snapshot and copy' },
        ]}
      />
      <Select
        label="Policy"
        value={policyId}
        onChange={setPolicyId}
        options={[{ value: '', label: 'None (on demand only)' }, ...props.policies.map((p) => ({ value: p.id, label: p.name }))]}
      />
      <Select
        label="Destination"
        value={destinationId}
        onChange={setDestinationId}
        options={[none, ...props.destinations.map((d) => ({ value: d.id, label: d.name }))]}
      />
    </Form>
  );
}
