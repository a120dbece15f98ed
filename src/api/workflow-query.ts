// Reading a workflow's live state for a REST answer. A query waits for a worker to answer: while none
// polls the task queue, or none is free, it would hold the request until the server gives up (found
// by API fuzzing). So a query is bounded, and a missing or silent worker is a 503, not a 500.
import { type Client, WorkflowNotFoundError } from "@temporalio/client";
import type { QueryDefinition } from "@temporalio/common";

export const QUERY_TIMEOUT_MS = 5_000;
const GRPC_FAILED_PRECONDITION = 9;

export type QueryAnswer<T> =
  | { ok: true; state: T }
  | { ok: false; status: 404 | 503; body: { error: string } };

/** The workflow's answer to `query`, or the status (404, 503) and error to answer instead. */
export async function queryWorkflow<T>(
  temporal: Client,
  workflowId: string,
  query: QueryDefinition<T, []>,
  what: string,
): Promise<QueryAnswer<T>> {
  const deadline = Date.now() + QUERY_TIMEOUT_MS;
  try {
    const state = await temporal.withDeadline(deadline, () =>
      temporal.workflow.getHandle(workflowId).query(query),
    );
    return { ok: true, state };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError || (err as Error).name === "WorkflowNotFoundError")
      return { ok: false, status: 404, body: { error: `${what} not found` } };
    if ((err as { cause?: { code?: number } }).cause?.code === GRPC_FAILED_PRECONDITION)
      return { ok: false, status: 503, body: { error: `no worker is polling for ${what}` } };
    if (Date.now() >= deadline)
      return {
        ok: false,
        status: 503,
        body: { error: `no worker answered the query of ${what} within ${QUERY_TIMEOUT_MS} ms` },
      };
    throw err;
  }
}
