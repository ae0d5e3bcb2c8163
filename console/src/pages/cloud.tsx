// Cloud accounts: link (the ExternalId and the role stack's quick-create link), set the
// role, verify, inventory; `updateAvailable` says when the role stack should be updated.
// Each account's inventory and security findings: pages/cloud-account.tsx.

import { useState } from 'preact/hooks';

import { all, call, type Json, post, remove } from '../api';
import { Action, Copyable, Field, Form, IfRole, Link, Loading, Page, State, Table, list, useLoad, when } from '../ui';

export function CloudAccountsPage() {
  const loaded = useLoad(() => all('/v1/cloud-accounts'));
  const [name, setName] = useState('');
  const [regions, setRegions] = useState('us-east-1');
  const [linked, setLinked] = useState<Json>();
  const [roleFor, setRoleFor] = useState<Json>();
  const [roleArn, setRoleArn] = useState('');
  return (
    <Page title="Cloud accounts">
      <IfRole role="admin">
        <Form
          label="Link an AWS account"
          submit="Link account"
          action={async () => {
            setLinked(await post('/v1/cloud-accounts', { name: name.trim(), regions: list(regions) }));
            setName('');
            loaded.reload();
          }}
        >
          <Field label="Account name" value={name} onInput={setName} required />
          <Field label="Regions" value={regions} onInput={setRegions} hint="Comma-separated" required />
        </Form>
      </IfRole>
      {linked && (
        <div class="card" role="status">
          <h2>Create the role in {linked.name}</h2>
          <p>Launch the role stack in the AWS account, then set the role ARN it outputs.</p>
          {linked.quickCreateLink && (
            <p>
              <a href={linked.quickCreateLink} target="_blank" rel="noopener noreferrer">
                Open the quick-create link
              </a>
            </p>
          )}
          {linked.externalId && <Copyable label="ExternalId" text={linked.externalId} />}
        </div>
      )}
      {roleFor && (
        <Form
          label={`Set the role of ${roleFor.name}`}
          submit="Set role"
          action={async () => {
            const current = await call('GET', `/v1/cloud-accounts/${roleFor.id}`);
            await call('PUT', `/v1/cloud-accounts/${roleFor.id}/role`, { roleArn: roleArn.trim() }, current.etag);
            setRoleFor(undefined);
            loaded.reload();
          }}
        >
          <Field label="Role ARN" value={roleArn} onInput={setRoleArn} required />
        </Form>
      )}
      <Loading loaded={loaded}>
        {(accounts) => (
          <Table
            label="Cloud accounts"
            rows={accounts}
            empty="No linked account."
            columns={[
              { label: 'Name', cell: (a: Json) => <Link to={`/cloud-accounts/${a.id}`}>{a.name}</Link> },
              { label: 'State', cell: (a: Json) => <State value={a.state} /> },
              { label: 'Account', cell: (a: Json) => a.awsAccountId ?? a.accountId ?? '—' },
              { label: 'Regions', cell: (a: Json) => (a.regions ?? []).join(', ') },
              {
                label: 'Role stack',
                cell: (a: Json) =>
                  a.updateAvailable ? (
                    <span>
                      update available ({a.currentRoleStackVersion}){' '}
                      {a.quickCreateLink && (
                        <a href={a.quickCreateLink} target="_blank" rel="noopener noreferrer">
                          update
                        </a>
                      )}
                    </span>
                  ) : (
                    'current'
                  ),
              },
              { label: 'Last inventory', cell: (a: Json) => when(a.lastInventoryAt ?? a.inventoriedAt) },
              {
                label: 'Actions',
                cell: (a: Json) => (
                  <div class="row-actions">
                    <IfRole role="operator">
                      <Action
                        label="Inventory"
                        name={`Inventory ${a.name}`}
                        action={async () => {
                          await post(`/v1/cloud-accounts/${a.id}/inventory`);
                          loaded.reload();
                        }}
                      />
                    </IfRole>
                    <IfRole role="admin">
                      <button type="button" onClick={() => setRoleFor(a)}>
                        Set role
                      </button>
                      <Action
                        label="Verify"
                        name={`Verify ${a.name}`}
                        action={async () => {
                          await post(`/v1/cloud-accounts/${a.id}/verify`);
                          loaded.reload();
                        }}
                      />
                      <Action
                        label="Delete"
                        name={`Delete account ${a.name}`}
                        danger
                        action={async () => {
                          await remove(`/v1/cloud-accounts/${a.id}`);
                          loaded.reload();
                        }}
                      />
                    </IfRole>
                  </div>
                ),
              },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}
