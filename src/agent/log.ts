/** One line per event: what happened, with the facts that matter to an operator reading a journal. */
export type Log = (event: string, fields?: Record<string, unknown>) => void;

export const stderrLog: Log = (event, fields) => {
  const facts = fields ? ` ${JSON.stringify(fields)}` : "";
  process.stderr.write(`${new Date().toISOString()} mm-agent ${event}${facts}\n`);
};
