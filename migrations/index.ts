import type { Migration } from "kysely";
import * as engine from "./0001_engine.ts";
import * as gateway from "./0002_gateway.ts";
import * as decisionsWorkflowId from "./0003_decisions_workflow_id.ts";
import * as auditChain from "./0004_audit_chain.ts";
import * as identityAndAlertScope from "./0005_identity_and_alert_scope.ts";
import * as rules from "./0006_rules.ts";
import * as siemOutboxAndTracing from "./0007_siem_outbox_and_tracing.ts";
import * as consoleSessions from "./0009_console_sessions.ts";
import * as catalogVersion from "./0010_catalog_version.ts";
import * as mitigationClaims from "./0011_mitigation_claims.ts";
import * as approvalsAndModes from "./0012_approvals_and_modes.ts";
import * as catalogVersionCommitted from "./0013_catalog_version_committed.ts";

// Every migration, in order. Listed rather than discovered on disk so they load the same way
// under tsx, vitest and bundlers; a test checks that no file of this folder is missing here.
export const migrations: Record<string, Migration> = {
  "0001_engine": engine,
  "0002_gateway": gateway,
  "0003_decisions_workflow_id": decisionsWorkflowId,
  "0004_audit_chain": auditChain,
  "0005_identity_and_alert_scope": identityAndAlertScope,
  "0006_rules": rules,
  "0007_siem_outbox_and_tracing": siemOutboxAndTracing,
  "0009_console_sessions": consoleSessions,
  "0010_catalog_version": catalogVersion,
  "0011_mitigation_claims": mitigationClaims,
  "0012_approvals_and_modes": approvalsAndModes,
  "0013_catalog_version_committed": catalogVersionCommitted,
};
