// Shared pieces of every page: navigation, loading, errors, tables, form fields and the
// role gate (a button the caller's role cannot use is not rendered at all).

import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';

import { ApiError, atLeast, type Role, type Session } from './api';

export const SessionContext = createContext<Session | null>(null);

export function navigate(to: string) {
  history.pushState(null, '', to);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function Link(props: { to: string; children: ComponentChildren; class?: string }) {
  return (
    <a
      href={props.to}
      class={props.class}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

/** Renders its children only when the caller's role is at least `role`. */
export function IfRole(props: { role: Role; children: ComponentChildren }) {
  const session = useContext(SessionContext);
  return atLeast(session, props.role) ? <>{props.children}</> : null;
}

export function useRole(role: Role): boolean {
  return atLeast(useContext(SessionContext), role);
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  reload: () => void;
}

/** Loads `load()` now, again on `reload()`, and every `pollMs` when given (live pages). */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = [], pollMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => live && (setData(d), setError(undefined)),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  useEffect(() => {
    if (!pollMs) return;
    const timer = setInterval(reload, pollMs);
    return () => clearInterval(timer);
  }, [pollMs]);
  return { data, error, reload };
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const text =
    error instanceof ApiError ? `${error.code}: ${error.detail}` : error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Arca`;
  }, [props.title]);
  // A new page moves focus to its heading, so keyboard and screen-reader users start there.
  useEffect(() => heading.current?.focus({ preventScroll: true }), []);
  return (
    <section aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1} ref={heading}>
          {props.title}
        </h1>
        <div class="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  );
}

export function Loading<T>(props: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (props.loaded.error) return <ErrorNote error={props.loaded.error} />;
  if (props.loaded.data === undefined) return <p aria-busy="true">Loading…</p>;
  return <>{props.children(props.loaded.data)}</>;
}

export interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
}

export function Table<T>(props: { label: string; rows: T[]; columns: Column<T>[]; empty?: string }) {
  if (props.rows.length === 0) return <p class="empty">{props.empty ?? 'Nothing yet.'}</p>;
  return (
    <div class="table-wrap">
      <table aria-label={props.label}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th scope="col">{c.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr>
              {props.columns.map((c) => (
                <td data-label={c.label}>{c.cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

let fieldIds = 0;

/** A labelled input (the label names it for screen readers and for the tests). */
export function Field(props: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  hint?: string;
  type?: string;
  required?: boolean;
  placeholder?: string;
}) {
  const [id] = useState(() => `f${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        type={props.type ?? 'text'}
        value={props.value}
        required={props.required}
        placeholder={props.placeholder}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
      />
      {props.hint && (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function Select(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  options: { value: string; label: string }[];
}) {
  const [id] = useState(() => `f${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map((o) => (
          <option value={o.value}>{o.label}</option>
        ))}
      </select>
    </div>
  );
}

export function Check(props: { label: string; checked: boolean; onChange: (v: boolean) => void }) {
  const [id] = useState(() => `f${++fieldIds}`);
  return (
    <div class="field check">
      <input
        id={id}
        type="checkbox"
        checked={props.checked}
        onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)}
      />
      <label for={id}>{props.label}</label>
    </div>
  );
}

/** A form whose submit runs `action`, shows its error, and disables itself meanwhile. */
export function Form(props: {
  label: string;
  submit: string;
  action: () => Promise<unknown>;
  /** Shown as a Cancel button (an edit form leaves without saving). */
  cancel?: () => void;
  children: ComponentChildren;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  return (
    <form
      aria-label={props.label}
      class="card"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        try {
          await props.action();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>{props.label}</h2>
      {props.children}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        {props.submit}
      </button>
      {props.cancel && (
        <button type="button" onClick={props.cancel}>
          Cancel
        </button>
      )}
    </form>
  );
}

/** A row's Edit button: `onEdit` puts the row in the page's form, which is at the top. */
export function EditButton(props: { name: string; onEdit: () => void }) {
  return (
    <button
      type="button"
      aria-label={props.name}
      onClick={() => {
        props.onEdit();
        window.scrollTo(0, 0);
      }}
    >
      Edit
    </button>
  );
}

/** A button running `action` with its error shown beside it. */
export function Action(props: { label: string; action: () => Promise<unknown>; danger?: boolean; name?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  return (
    <span class="action">
      <button
        type="button"
        class={props.danger ? 'danger' : undefined}
        aria-label={props.name}
        disabled={busy}
        onClick={async () => {
          if (props.danger && !confirm(`${props.name ?? props.label}?`)) return;
          setBusy(true);
          setError(undefined);
          try {
            await props.action();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        {props.label}
      </button>
      <ErrorNote error={error} />
    </span>
  );
}

export function State({ value }: { value: string | undefined | null }) {
  const v = value ?? 'UNKNOWN';
  return <span class={`state state-${v.toLowerCase()}`}>{v}</span>;
}

export function when(at: string | null | undefined): string {
  if (!at) return '—';
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? at : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function bytes(n: number | null | undefined): string {
  if (!n) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** `a=b,c=d` as a map (label selectors, namespace and storage class maps). */
export function parseMap(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [k, ...v] = part.split('=');
    if (!k || v.length === 0) throw new Error(`"${part}" is not key=value`);
    out[k.trim()] = v.join('=').trim();
  }
  return out;
}

export const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function Copyable({ label, text }: { label: string; text: string }) {
  return (
    <div class="copy">
      <span class="copy-label">{label}</span>
      <pre aria-label={label} tabIndex={0}>
        {text}
      </pre>
    </div>
  );
}
