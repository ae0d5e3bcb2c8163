// Destinations: where backup data goes (Arca-managed, an S3 bucket of yours, or a local
// directory in single-machine mode).

import { useState } from 'preact/hooks';

import { all, type Json, post, remove } from '../api';
import { Action, Check, Field, Form, IfRole, Loading, Page, Select, Table, useLoad } from '../ui';

function target(t: Json): string {
  switch (t?.kind) {
    case 'S3':
      return `s3://${t.bucket}/${t.prefix ?? ''} (${t.region}${t.endpoint ? `, ${t.endpoint}` : ''})`;
    case 'LOCAL_FILESYSTEM':
      return `local ${t.path}`;
    case 'ARCA_MANAGED':
      return `Arca-managed${t.region ? ` (${t.region})` : ''}`;
    default:
      return JSON.stringify(t);
  }
}

export function DestinationsPage() {
  const loaded = useLoad(() => all('/v1/destinations'));
  const [name, setName] = useState('');
  const [kind, setKind] = useState('S3');
  const [bucket, setBucket] = useState('');
  const [region, setRegion] = useState('us-east-1');
  const [endpoint, setEndpoint] = useState('');
  const [prefix, setPrefix] = useState('');
  const [credentialsRef, setCredentialsRef] = useState('');
  const [path, setPath] = useState('');
  const [lock, setLock] = useState(false);
  const [kmsKeyArn, setKmsKeyArn] = useState('');
  const [kmsEndpoint, setKmsEndpoint] = useState('');
  return (
    <Page title="Destinations">
      <IfRole role="admin">
        <Form
          label="Create a destination"
          submit="Create destination"
          action={async () => {
            const t =
              kind === 'S3'
                ? {
                    kind,
                    bucket: bucket.trim(),
                    region: region.trim(),
                    endpoint: endpoint.trim() || null,
                    prefix: prefix.trim(),
                    credentialsRef: credentialsRef.trim() || null,
                  }
                : kind === 'LOCAL_FILESYSTEM'
                  ? { kind, path: path.trim() }
                  : { kind, region: region.trim() || null };
            await post('/v1/destinations', {
              name: name.trim(),
              target: t,
              objectLock: lock ? { mode: 'GOVERNANCE' } : null,
              customerKey: kmsKeyArn.trim()
                ? { kmsKeyArn: kmsKeyArn.trim(), endpoint: kmsEndpoint.trim() || null }
                : null,
            });
            setName('');
            loaded.reload();
          }}
        >
          <Field label="Destination name" value={name} onInput={setName} required />
          <Select
            label="Kind"
            value={kind}
            onChange={setKind}
            options={[
              { value: 'S3', label: 'S3 bucket of yours' },
              { value: 'ARCA_MANAGED', label: 'Arca-managed' },
              { value: 'LOCAL_FILESYSTEM', label: 'Local directory (single machine)' },
            ]}
          />
          {kind === 'S3' && (
            <>
              <Field label="Bucket" value={bucket} onInput={setBucket} required />
              <Field label="Region" value={region} onInput={setRegion} required />
              <Field label="Endpoint" value={endpoint} onInput={setEndpoint} hint="S3-compatible services only" />
              <Field label="Prefix" value={prefix} onInput={setPrefix} />
              <Field
                label="Credentials reference"
                value={credentialsRef}
                onInput={setCredentialsRef}
                hint="The Secret beside the agent holding the keys (never the keys)"
              />
            </>
          )}
          {kind === 'LOCAL_FILESYSTEM' && <Field label="Path" value={path} onInput={setPath} required />}
          {kind !== 'LOCAL_FILESYSTEM' && <Check label="Immutable (S3 Object Lock, governance)" checked={lock} onChange={setLock} />}
          <Field
            label="Customer KMS key"
            value={kmsKeyArn}
            onInput={setKmsKeyArn}
            hint="A KMS key ARN of yours: it wraps this destination's keys, which Arca never holds"
          />
          {kmsKeyArn.trim() && (
            <Field label="KMS endpoint" value={kmsEndpoint} onInput={setKmsEndpoint} hint="VPC endpoints without private DNS only" />
          )}
        </Form>
      </IfRole>
      <Loading loaded={loaded}>
        {(destinations) => (
          <Table
            label="Destinations"
            rows={destinations}
            columns={[
              { label: 'Name', cell: (d: Json) => d.name },
              { label: 'Target', cell: (d: Json) => target(d.target) },
              { label: 'Immutable', cell: (d: Json) => d.objectLock?.mode ?? 'no' },
              { label: 'Keys', cell: (d: Json) => d.customerKey?.kmsKeyArn ?? 'Arca' },
              {
                label: 'Actions',
                cell: (d: Json) => (
                  <IfRole role="admin">
                    <Action
                      label="Delete"
                      name={`Delete destination ${d.name}`}
                      danger
                      action={async () => {
                        await remove(`/v1/destinations/${d.id}`);
                        loaded.reload();
                      }}
                    />
                  </IfRole>
                ),
              },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}
