// The console's one way to the REST API: same origin, the session cookie sent by the browser, and
// the session's CSRF token on every request that changes something (src/api/auth.ts).
import { useCallback, useEffect, useRef, useState } from "react";

export type Role = "viewer" | "responder" | "admin";

export interface Session {
  actor: string;
  role: Role;
  expires_at: string | null;
  csrf_token: string | null;
  temporal_ui_url: string;
  namespace: string;
}

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
let onUnauthorized: () => void = () => {};

export function setSession(session: Session | null, signedOut?: () => void): void {
  csrfToken = session?.csrf_token ?? null;
  if (signedOut) onUnauthorized = signedOut;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    // A revoked token or an expired session: back to the sign-in page (but not for sign-in itself).
    if (response.status === 401 && path !== "/api/session") onUnauthorized();
    const message = (data as { error?: string } | null)?.error ?? response.statusText;
    throw new ApiError(response.status, message, (data as { errors?: FieldError[] })?.errors);
  }
  return data as T;
}

/** `?a=1&b=2` of the filters that are set. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
}

/**
 * GETs `path` now and every `intervalMs` while the view is shown (the console's live lists); a
 * slow answer is never overtaken by an older one.
 */
export function usePoll<T>(path: string | null, intervalMs = 2_000): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const latest = useRef(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick asks for a reload
  useEffect(() => {
    if (path === null) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      const call = ++latest.current;
      try {
        const value = await api<T>("GET", path);
        if (!stopped && call === latest.current) {
          setData(value);
          setError(undefined);
        }
      } catch (err) {
        if (!stopped && call === latest.current) setError((err as Error).message);
      }
      if (!stopped && intervalMs > 0) timer = setTimeout(load, intervalMs);
    };
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [path, intervalMs, tick]);
  return { data, error, reload };
}
