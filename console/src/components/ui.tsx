import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';

/** Loads on mount and when `deps` change; `reload` runs it again (after a write). */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error: unknown) => mine === seq.current && setState({ error, loading: false }),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** The API's own message (and its code and request id, for support), in a live region. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      <strong>{e ? e.message : String((error as Error).message ?? error)}</strong>
      {e && (
        <span class="muted">
          {' '}
          ({e.code}
          {e.requestId ? `, request ${e.requestId}` : ''})
        </span>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** A wide table scrolls sideways on a phone, and can be reached with the keyboard to do so. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

/**
 * A destructive action: the button opens a modal dialog that says what will happen; only its
 * confirm button acts. The dialog is the browser's own (focus is kept inside, Escape cancels).
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  body: ComponentChildren;
  confirm: string;
  onConfirm: () => Promise<unknown>;
  danger?: boolean;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const open = () => {
    setError(null);
    dialog.current?.showModal();
  };
  const act = async () => {
    setBusy(true);
    setError(null);
    try {
      await props.onConfirm();
      dialog.current?.close();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class={props.danger ? 'danger' : ''} onClick={open}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-labelledby={undefined} aria-label={props.title}>
        <h2>{props.title}</h2>
        <div>{props.body}</div>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={busy} onClick={() => void act()}>
            {props.confirm}
          </button>
        </div>
      </dialog>
    </>
  );
}

/** A secret shown this once: read-only, selectable, with a copy button and the warning. */
export function SecretOnce({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(value);
    setCopied(true);
  };
  return (
    <div class="secret" role="group" aria-label={label}>
      <p class="warning">
        <strong>Shown this once.</strong> Copy it now and give it to the customer over a safe channel: the service keeps only its hash and cannot show it again.
      </p>
      <label>
        {label}
        <input type="text" readOnly value={value} data-secret onFocus={(e) => e.currentTarget.select()} />
      </label>
      <button type="button" onClick={() => void copy().catch(() => setCopied(false))}>
        Copy
      </button>
      <span role="status">{copied ? ' Copied.' : ''}</span>
    </div>
  );
}

export const date = (iso: string | null | undefined) => (iso ? new Date(iso).toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '—');

export function Field(props: {
  label: string;
  name: string;
  type?: string;
  value?: string;
  required?: boolean;
  placeholder?: string;
  autoComplete?: string;
  onInput?: (v: string) => void;
}) {
  return (
    <label class="field">
      <span>{props.label}</span>
      <input
        name={props.name}
        type={(props.type ?? 'text') as 'text'}
        value={props.value}
        required={props.required}
        placeholder={props.placeholder}
        autoComplete={props.autoComplete ?? 'off'}
        onInput={(e) => props.onInput?.(e.currentTarget.value)}
      />
    </label>
  );
}
