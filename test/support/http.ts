// Test responses are checked field by field with expect(); typing each body would only restate them.
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Json = any;

/** The MM_ADMIN_TOKEN of every test context (test/support/context.ts). */
export const TEST_ADMIN_TOKEN = "mm-test-admin-token-0123456789";

/** A small JSON client for the REST API under test; it authenticates with `token` (null: not at all). */
export function restClient(
  baseUrl: () => string | undefined,
  token: string | null = TEST_ADMIN_TOKEN,
) {
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const auth: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers:
        body === undefined
          ? { ...auth, ...headers }
          : { "content-type": "application/json", ...auth, ...headers },
      body:
        body === undefined
          ? undefined
          : typeof body === "string" || body instanceof Uint8Array
            ? body
            : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: (text ? JSON.parse(text) : null) as Json,
      headers: res.headers,
    };
  };
  return {
    call,
    get: (path: string) => call("GET", path),
    post: (path: string, body: unknown) => call("POST", path, body),
    put: (path: string, body: unknown) => call("PUT", path, body),
    patch: (path: string, body: unknown) => call("PATCH", path, body),
    delete: (path: string) => call("DELETE", path),
    /** POSTs a document that must be created (201), e.g. a catalog entry a test sets up. */
    async created(path: string, body: unknown) {
      const res = await call("POST", path, body);
      if (res.status !== 201)
        throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res;
    },
  };
}
