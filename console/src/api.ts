// The console's only way to the server: the /v1 API of the same origin, with the API key
// from sessionStorage (gone when the tab closes; never in a URL, never logged).

const KEY = 'arca.apiKey';

export type Role = 'viewer' | 'operator' | 'admin';
export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Session {
  orgId: string;
  apiKeyId: string | null;
  role: Role;
}

/** A refused call: the API's problem+json, kept whole so pages can show `code` and `detail`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export const storedKey = (): string | null => sessionStorage.getItem(KEY);
export const storeKey = (key: string) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

export interface Reply<T> {
  data: T;
  etag: string | null;
}

/** One call. `etag` goes as `If-Match` (every PUT/DELETE needs the version read). */
export async function call<T = Json>(
  method: string,
  path: string,
  body?: unknown,
  etag?: string | null,
): Promise<Reply<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = storedKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (etag) headers['if-match'] = etag;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await response.text();
  let data: Json = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = data?.code ?? `http_${response.status}`;
    const detail = data?.detail ?? data?.title ?? response.statusText;
    if (response.status === 401 && path !== '/v1/signup') {
      window.dispatchEvent(new CustomEvent('arca:unauthenticated'));
    }
    throw new ApiError(response.status, code, detail);
  }
  return { data: data as T, etag: response.headers.get('etag') };
}

export const get = async <T = Json>(path: string) => (await call<T>('GET', path)).data;
export const post = async <T = Json>(path: string, body?: unknown, etag?: string | null) =>
  (await call<T>('POST', path, body ?? {}, etag)).data;

/** Every item of a listing, following `nextCursor` (at most `max` items). */
export async function all<T = Json>(path: string, max = 500): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const url: string = cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path;
    const page: { items: T[]; nextCursor?: string | null } = await get(url);
    items.push(...page.items);
    cursor = page.nextCursor ?? null;
  } while (cursor && items.length < max);
  return items;
}

/**
 * Read, then replace with the read's ETag (a change made meanwhile is refused with 412,
 * never overwritten): the body is the read's `members` (those its PUT takes) with `change`
 * applied.
 */
export async function edit(path: string, members: string[], change: (body: Json) => Json): Promise<Json> {
  const current = await call('GET', path);
  const body = Object.fromEntries(members.filter((m) => m in current.data).map((m) => [m, current.data[m]]));
  return (await call('PUT', path, change(body), current.etag)).data;
}

export async function remove(path: string): Promise<void> {
  const current = await call('GET', path);
  await call('DELETE', path, undefined, current.etag);
}

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
export const atLeast = (session: Session | null, role: Role) => !!session && rank[session.role] >= rank[role];
