import { useEffect, useRef, useState } from 'preact/hooks';
import { call, type Answer } from '../api';
import { ErrorNote, useSubmit } from '../components/ui';

/**
 * The admin token is sent once, in the body, and exchanged for a session cookie the page's scripts
 * cannot read. It is never put in localStorage, sessionStorage or the URL; the field is cleared.
 */
export function SignIn({ onSignedIn }: { onSignedIn: (s: Answer<'/api/console/session', 'get'>) => void }) {
  const [token, setToken] = useState('');
  // The field takes the focus when the page shows, as a keyboard user expects (autofocus alone is not
  // applied to a field a script adds after the document has loaded, in every browser).
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => field.current?.focus(), []);
  const submit = useSubmit(async () => {
    const session = await call('post', '/api/console/session', { body: { token: token.trim() } });
    setToken('');
    onSignedIn(session);
  });
  return (
    <>
      <h1>Sign in to the billing console</h1>
      <p>
        Paste an admin token (one of ADMIN_API_TOKEN). It is exchanged for a session that ends after a while without use, and it is not kept in this browser.
      </p>
      <form onSubmit={submit.onSubmit}>
        <label class="field">
          <span>Admin token</span>
          <input
            ref={field}
            name="token"
            type="password"
            autoComplete="off"
            required
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            autoFocus
          />
        </label>
        <ErrorNote error={submit.error} />
        <button type="submit" class="primary" disabled={submit.busy}>
          Sign in
        </button>
      </form>
    </>
  );
}
