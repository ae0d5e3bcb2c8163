// Clusters: register one (the one-time `kubectl apply` line and the Helm command), see
// agent version and last heartbeat, create a new install link, delete.

import { useState } from 'preact/hooks';

import { all, get, type Json, post, remove } from '../api';
import {
  Action,
  Copyable,
  Field,
  Form,
  IfRole,
  Link,
  Loading,
  navigate,
  Page,
  State,
  Table,
  useLoad,
  when,
} from '../ui';

interface Registered {
  id: string;
  name: string;
  command: string;
  helm: string;
  agentToken: string;
}

function helmCommand(id: string, token: string) {
  return (
    `helm install arca-agent agent/chart --namespace default --set apiUrl=${location.origin} ` +
    `--set clusterId=${id} --set-string agentToken=${token}`
  );
}

function InstallCommands({ r }: { r: Registered }) {
  return (
    <div class="card" role="status" aria-label="Install the agent">
      <h2>Install the agent into {r.name}</h2>
      <p>Run one of these against the cluster (the link works once, for an hour). The agent calls out only.</p>
      <Copyable label="kubectl apply line" text={r.command} />
      <Copyable label="Helm command" text={r.helm} />
      <p class="hint">The agent token is in the Helm command and shown only now.</p>
    </div>
  );
}

export function ClustersPage() {
  const loaded = useLoad(() => all('/v1/clusters'), [], 5000);
  const [name, setName] = useState('');
  const [registered, setRegistered] = useState<Registered>();
  return (
    <Page title="Clusters">
      <IfRole role="admin">
        <Form
          label="Register a cluster"
          submit="Register"
          action={async () => {
            const c = await post('/v1/clusters', { name: name.trim() });
            const link = await post(`/v1/clusters/${c.id}/install`);
            setRegistered({
              id: c.id,
              name: c.name,
              command: link.command,
              helm: helmCommand(c.id, c.agentToken),
              agentToken: c.agentToken,
            });
            setName('');
            loaded.reload();
          }}
        >
          <Field label="Cluster name" value={name} onInput={setName} required />
        </Form>
      </IfRole>
      {registered && <InstallCommands r={registered} />}
      <Loading loaded={loaded}>
        {(clusters) => (
          <Table
            label="Clusters"
            rows={clusters}
            empty="No cluster yet."
            columns={[
              { label: 'Name', cell: (c: Json) => <Link to={`/clusters/${c.id}`}>{c.name}</Link> },
              { label: 'State', cell: (c: Json) => <State value={c.state} /> },
              { label: 'Agent version', cell: (c: Json) => c.agentVersion ?? '—' },
              { label: 'Kubernetes', cell: (c: Json) => c.kubernetesVersion ?? '—' },
              { label: 'Last heartbeat', cell: (c: Json) => when(c.lastHeartbeatAt) },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}

export function ClusterPage({ id }: { id: string }) {
  const loaded = useLoad(() => get(`/v1/clusters/${id}`), [id], 5000);
  const [link, setLink] = useState<string>();
  return (
    <Page title="Cluster">
      <Loading loaded={loaded}>
        {(c: Json) => (
          <>
            <dl class="facts">
              <dt>Name</dt>
              <dd>{c.name}</dd>
              <dt>Id</dt>
              <dd>{c.id}</dd>
              <dt>State</dt>
              <dd>
                <State value={c.state} />
              </dd>
              <dt>Agent version</dt>
              <dd>{c.agentVersion ?? '—'}</dd>
              <dt>Kubernetes</dt>
              <dd>{c.kubernetesVersion ?? '—'}</dd>
              <dt>Nodes</dt>
              <dd>{c.nodeCount ?? '—'}</dd>
              <dt>Last heartbeat</dt>
              <dd>{when(c.lastHeartbeatAt)}</dd>
              <dt>Backups</dt>
              <dd>{(c.backupDefinitionIds ?? []).length}</dd>
            </dl>
            <IfRole role="admin">
              <div class="actions">
                <Action
                  label="New install link"
                  action={async () => setLink((await post(`/v1/clusters/${id}/install`)).command)}
                />
                <Action
                  label="Delete"
                  name={`Delete cluster ${c.name}`}
                  danger
                  action={async () => {
                    await remove(`/v1/clusters/${id}`);
                    navigate('/clusters');
                  }}
                />
              </div>
            </IfRole>
            {link && <Copyable label="kubectl apply line" text={link} />}
          </>
        )}
      </Loading>
    </Page>
  );
}
