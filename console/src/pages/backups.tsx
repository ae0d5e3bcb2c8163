// Backup definitions: create and edit (namespaces/labels, PV mode, policy, destination),
// run now, pause and resume.

import { useState } from 'preact/hooks';

import { all, call, edit, type Json, post, remove } from '../api';
import {
  Action,
  Check,
  EditButton,
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
  // The definition being edited (its form replaces the create form), or none.
  const [editing, setEditing] = useState<Json | null>(null);
  return (
    <Page title="Backups">
      <Loading loaded={loaded}>
        {({ backups, clusters, policies, destinations }) => {
          const nameOf = (items: Json[], id: string | null | undefined) =>
            id ? (items.find((x) => x.id === id)?.name ?? id) : '—';
          return (
            <>
              <IfRole role="admin">
                <BackupForm
                  key={editing?.id ?? 'new'}
                  editing={editing}
                  clusters={clusters}
                  policies={policies}
                  destinations={destinations}
                  done={() => {
                    setEditing(null);
                    loaded.reload();
                  }}
                />
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
                          <EditButton name={`Edit backup ${b.name}`} onEdit={() => setEditing(b)} />
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

/** The members of a backup definition its PUT takes. */
const BACKUP_BODY = [
  'name',
  'description',
  'clusterId',
  'selection',
  'pvMode',
  'deleteSnapshotAfterCopy',
  'policyId',
  'destinationId',
  'paused',
  'tags',
  'hooks',
];

const mapText = (m: Record<string, string> | undefined) =>
  Object.entries(m ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/**
 * Creates a backup definition, or edits `editing` (its cluster is fixed at creation; kinds,
 * tags and hooks, which this form does not show, are kept as they are).
 */
function BackupForm(props: {
  editing: Json | null;
  clusters: Json[];
  policies: Json[];
  destinations: Json[];
  done: () => void;
}) {
  const e = props.editing;
  const [name, setName] = useState<string>(e?.name ?? '');
  const [clusterId, setClusterId] = useState<string>(e?.clusterId ?? props.clusters[0]?.id ?? '');
  const [fullCluster, setFullCluster] = useState<boolean>(!!e?.selection?.fullCluster);
  const [namespaces, setNamespaces] = useState<string>((e?.selection?.namespaces ?? []).join(', '));
  const [labels, setLabels] = useState<string>(mapText(e?.selection?.labels));
  const [pvMode, setPvMode] = useState<string>(e?.pvMode ?? 'none');
  const [policyId, setPolicyId] = useState<string>(e?.policyId ?? '');
  const [destinationId, setDestinationId] = useState<string>(e?.destinationId ?? '');
  const none = { value: '', label: '—' };
  const fields = () => ({
    name: name.trim(),
    pvMode,
    policyId: policyId || null,
    destinationId: destinationId || null,
  });
  const selection = () =>
    fullCluster ? { fullCluster: true, namespaces: [], labels: {} } : { fullCluster: false, namespaces: list(namespaces), labels: parseMap(labels) };
  return (
    <Form
      label={e ? `Edit backup ${e.name}` : 'Create a backup'}
      submit={e ? 'Save backup' : 'Create backup'}
      cancel={e ? props.done : undefined}
      action={async () => {
        if (e) {
          await edit(`/v1/backups/${e.id}`, BACKUP_BODY, (body) => ({
            ...body,
            ...fields(),
            selection: { ...body.selection, ...selection() },
          }));
        } else {
          await post('/v1/backups', {
            ...fields(),
            clusterId: clusterId || props.clusters[0]?.id,
            selection: selection(),
          });
          setName('');
        }
        props.done();
      }}
    >
      <Field label="Backup name" value={name} onInput={setName} required />
      {e ? (
        <p class="hint">
          Cluster: {props.clusters.find((c) => c.id === e.clusterId)?.name ?? e.clusterId} (fixed at creation)
        </p>
      ) : (
        <Select
          label="Cluster"
          value={clusterId}
          onChange={setClusterId}
          options={props.clusters.map((c) => ({ value: c.id, label: c.name }))}
        />
      )}
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
