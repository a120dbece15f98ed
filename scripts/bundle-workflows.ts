// `npm run build`, second step: bundles the workflow code once into the file the compiled worker
// loads (src/worker.ts looks for it beside itself), so no production start bundles with webpack.
import { writeFileSync } from "node:fs";
import { bundleWorkflows } from "../src/worker.ts";

const [out] = process.argv.slice(2);
if (!out) throw new Error("usage: tsx scripts/bundle-workflows.ts <output file>");
writeFileSync(out, await bundleWorkflows());
