import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';

import { forgetKey, get, post, storedKey, storeKey, type Session } from './api';
import { AuditPage } from './pages/audit';
import { BackupsPage } from './pages/backups';
import { CloudAccountsPage } from './pages/cloud';
import { CloudAccountPage } from './pages/cloud-account';
import { ClusterPage, ClustersPage } from './pages/clusters';
import { DestinationsPage } from './pages/destinations';
import { JobPage, JobsPage } from './pages/jobs';
import { OverviewPage } from './pages/overview';
import { PointPage, PointsPage } from './pages/points';
import { PoliciesPage } from './pages/policies';
import { RdsPage } from './pages/rds';
import { RestorePage, RestoreWizard } from './pages/restore';
import { Copyable, ErrorNote, Field, Form, Link, navigate, SessionContext } from './ui';
import './style.css';

const NAV: [string, string, boolean?][] = [
  ['/', 'Overview'],
  ['/clusters', 'Clusters'],
  ['/backups', 'Backups'],
  ['/jobs', 'Jobs'],
  ['/recovery-points', 'Recovery points'],
  ['/restore', 'Restore'],
  ['/policies', 'Policies'],
  ['/destinations', 'Destinations'],
  ['/cloud-accounts', 'Cloud accounts'],
  ['/rds', 'RDS'],
  ['/audit', 'Audit log', true],
];

function route(path: string) {
  const [, a, b] = path.split('/');
  switch (a) {
    case '':
      return <OverviewPage />;
    case 'clusters':
      return b ? <ClusterPage id={b} /> : <ClustersPage />;
    case 'backups':
      return <BackupsPage />;
    case 'jobs':
      return b ? <JobPage id={b} /> : <JobsPage />;
    case 'recovery-points':
      return b ? <PointPage id={b} /> : <PointsPage />;
    case 'restore':
      return <RestoreWizard />;
    case 'restores':
      return <RestorePage id={b} />;
    case 'policies':
      return <PoliciesPage />;
    case 'destinations':
      return <DestinationsPage />;
    case 'cloud-accounts':
      return b ? <CloudAccountPage id={b} /> : <CloudAccountsPage />;
    case 'rds':
      return <RdsPage />;
    case 'audit':
      return <AuditPage />;
    default:
      return (
        <section>
          <h1 id="page-title">Not found</h1>
          <p>
            No page at {path}. <Link to="/">Overview</Link>
          </p>
        </section>
      );
  }
}

function SignIn(props: { onSession: (s: Session) => void }) {
  const [key, setKey] = useState('');
  const [org, setOrg] = useState('');
  const [created, setCreated] = useState<string>();
  const signIn = async (k: string) => {
    storeKey(k);
    try {
      props.onSession(await get<Session>('/v1/whoami'));
    } catch (e) {
      forgetKey();
      throw e;
    }
  };
  return (
    <main class="signin">
      <h1>Arca console</h1>
      <Form label="Sign in" submit="Sign in" action={() => signIn(key.trim())}>
        <Field label="API key" type="password" value={key} onInput={setKey} required
          hint="Kept in this tab's session storage only; closing the tab forgets it." />
      </Form>
      <Form
        label="Sign up"
        submit="Create organization"
        action={async () => {
          const r = await post('/v1/signup', { orgName: org.trim() });
          const k = r.adminKey?.secret;
          setCreated(typeof k === 'string' ? k : undefined);
          setKey(typeof k === 'string' ? k : '');
        }}
      >
        <Field label="Organization name" value={org} onInput={setOrg} required />
      </Form>
      {created && (
        <div class="card" role="status">
          <p>Your organization exists. Its admin API key is shown once: keep it somewhere safe.</p>
          <Copyable label="Admin API key" text={created} />
          <button type="button" onClick={() => signIn(created)}>
            Continue with this key
          </button>
        </div>
      )}
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(!!storedKey());
  const [error, setError] = useState<unknown>();
  const [path, setPath] = useState(location.pathname);
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    const onPop = () => {
      setPath(location.pathname);
      setMenu(false);
    };
    const onUnauth = () => {
      forgetKey();
      setSession(null);
    };
    window.addEventListener('popstate', onPop);
    window.addEventListener('arca:unauthenticated', onUnauth);
    if (storedKey()) {
      get<Session>('/v1/whoami')
        .then(setSession, setError)
        .finally(() => setChecking(false));
    }
    return () => {
      window.removeEventListener('popstate', onPop);
      window.removeEventListener('arca:unauthenticated', onUnauth);
    };
  }, []);
  if (checking) return <p aria-busy="true">Signing in…</p>;
  if (!session)
    return (
      <>
        <ErrorNote error={error} />
        <SignIn onSession={setSession} />
      </>
    );
  const current = (to: string) => path === to || (to !== '/' && path.startsWith(`${to}/`));
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Arca</span>
        <button type="button" class="menu" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <span class="who">
          {session.role} · {session.orgId}
        </span>
        <button
          type="button"
          onClick={() => {
            forgetKey();
            setSession(null);
            navigate('/');
          }}
        >
          Sign out
        </button>
      </header>
      <div class="layout">
        <nav id="nav" aria-label="Main" class={menu ? 'open' : undefined}>
          <ul>
            {NAV.filter(([, , admin]) => !admin || session.role === 'admin').map(([to, label]) => (
              <li>
                <a
                  href={to}
                  aria-current={current(to) ? 'page' : undefined}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(to);
                  }}
                >
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main">{route(path)}</main>
      </div>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
