// The details of a push-rules mitigation step, checked when the mitigation is stored (catalog.ts)
// and again when it is planned. Its own module: the engine's activities read it without loading
// the catalogue's schemas (which must be built after the OpenAPI extension of zod).
import * as z from "zod";

// What a push-rules step pushes: a rule set (its newest version unless one is given) to the host
// or its groups, or the rules naming the alert's techniques to the host.
export const pushRulesDetails = z.union(
  [
    z.strictObject({
      rule_set: z.string().min(1).max(200),
      version: z.int().min(1).max(2_147_483_647).optional(),
      target: z.enum(["host", "group"]).default("host"),
    }),
    z.strictObject({
      techniques: z.literal("alert"),
      target: z.literal("host").default("host"),
    }),
  ],
  {
    error:
      'push-rules details are {"rule_set": name, "version"?: n, "target"?: "host"|"group"} or {"techniques": "alert"}',
  },
);
export type PushRulesDetails = z.output<typeof pushRulesDetails>;
