import pg from "pg";

/** Creates an empty database beside the one of `baseUrl` and returns its URL (tests and benchmarks). */
export async function createScratchDatabase(baseUrl: string, name: string): Promise<string> {
  await adminQuery(baseUrl, `CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropScratchDatabase(baseUrl: string, name: string): Promise<void> {
  await adminQuery(baseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

async function adminQuery(baseUrl: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}
