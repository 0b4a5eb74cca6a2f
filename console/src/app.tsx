import type { ComponentChildren } from 'preact';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { useEffect, useState } from 'preact/hooks';
import { call, whenSignedOut, type Answer } from './api';
import { ErrorNote } from './components/ui';
import { Audit } from './pages/audit';
import { Customer } from './pages/customer';
import { Customers } from './pages/customers';
import { EventsOut } from './pages/events';
import { Forwarding } from './pages/forwarding';
import { Overview } from './pages/overview';
import { Plans } from './pages/plans';
import { SignIn } from './pages/sign-in';
import { StripeWebhooks } from './pages/webhooks';

/** The console's URLs: the service serves the page at each (src/modules/console/console-page.ts; a test holds the lists equal). */
export const PAGES = [
  '/console',
  '/console/sign-in',
  '/console/customers',
  '/console/customers/:id',
  '/console/plans',
  '/console/forwarding',
  '/console/webhooks',
  '/console/events',
  '/console/audit',
] as const;

const NAV: [string, string][] = [
  ['/console', 'Overview'],
  ['/console/customers', 'Customers'],
  ['/console/plans', 'Plans'],
  ['/console/forwarding', 'Forwarding'],
  ['/console/webhooks', 'Stripe webhooks'],
  ['/console/events', 'Events out'],
  ['/console/audit', 'Audit log'],
];

type Session = Answer<'/api/console/session', 'get'>;

const signInUrl = (next: string) => `/console/sign-in?next=${encodeURIComponent(next)}`;

function Shell({ session, onSignOut, children }: { session: Session; onSignOut: () => void; children: ComponentChildren }) {
  const { path } = useLocation();
  const [error, setError] = useState<unknown>(null);
  const signOut = async () => {
    try {
      await call('delete', '/api/console/session');
      onSignOut();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/console">
          Billing console
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([href, label]) => {
              const current = href === '/console' ? path === '/console' || path === '/console/' : path.startsWith(href);
              return (
                <li key={href}>
                  <a href={href} aria-current={current ? 'page' : undefined}>
                    {label}
                  </a>
                </li>
              );
            })}
          </ul>
        </nav>
        <div class="who">
          <span class="muted" title={`Session ends by ${session.expires_at}`}>
            {session.actor_id}
          </span>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <ErrorNote error={error} />
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

function Pages() {
  const loc = useLocation();
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const onSignIn = loc.path === '/console/sign-in';

  useEffect(() => {
    whenSignedOut(() => {
      setSession(null);
      loc.route(signInUrl(location.pathname + location.search), true);
    });
  }, []);

  useEffect(() => {
    if (onSignIn) return;
    call('get', '/api/console/session').then(setSession, () => {
      setSession(null);
      loc.route(signInUrl(loc.url), true);
    });
  }, [onSignIn]);

  if (onSignIn)
    return (
      <main id="main" class="narrow">
        <SignIn
          onSignedIn={(s) => {
            setSession(s);
            const next = new URLSearchParams(location.search).get('next');
            // Only a console path of this origin: never a link's idea of where to go.
            loc.route(next && /^\/console(\/|$|\?)/.test(next) ? next : '/console');
          }}
        />
      </main>
    );
  if (!session) return <p role="status">Checking your session…</p>;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        setSession(null);
        loc.route('/console/sign-in');
      }}
    >
      <Router>
        <Route path="/console" component={Overview} />
        <Route path="/console/" component={Overview} />
        <Route path="/console/customers" component={Customers} />
        <Route path="/console/customers/:id" component={Customer} />
        <Route path="/console/plans" component={Plans} />
        <Route path="/console/forwarding" component={Forwarding} />
        <Route path="/console/webhooks" component={StripeWebhooks} />
        <Route path="/console/events" component={EventsOut} />
        <Route path="/console/audit" component={Audit} />
        <Route default component={NotFound} />
      </Router>
    </Shell>
  );
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        This console has no such page. <a href="/console">Go to the overview</a>.
      </p>
    </>
  );
}

export function App() {
  return (
    <LocationProvider>
      <Pages />
    </LocationProvider>
  );
}
