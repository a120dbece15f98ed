import { defineSearchAttributeKey, SearchAttributeType } from "@temporalio/common";

// Registered by scripts/stack.sh (and docker-compose's temporal admin step): operators filter
// incidents in the Temporal UI by these, e.g. `Host = "web-1" AND IncidentStatus = "open"`.
export const HOST = defineSearchAttributeKey("Host", SearchAttributeType.KEYWORD);
export const AGENT_ID = defineSearchAttributeKey("AgentId", SearchAttributeType.KEYWORD);
export const TECHNIQUES = defineSearchAttributeKey("Techniques", SearchAttributeType.KEYWORD_LIST);
export const SEVERITY = defineSearchAttributeKey("Severity", SearchAttributeType.KEYWORD);
export const INCIDENT_STATUS = defineSearchAttributeKey(
  "IncidentStatus",
  SearchAttributeType.KEYWORD,
);
