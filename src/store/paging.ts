import { type SelectQueryBuilder, sql } from "kysely";

export interface Page {
  limit: number;
  offset: number;
}

/**
 * One page of a filtered query and the number of rows the filter matches in all, read in
 * parallel. `rows` selects and orders; the count ignores both.
 */
export async function pageOf<DB, TB extends keyof DB, O>(
  filtered: SelectQueryBuilder<DB, TB, object>,
  rows: (q: SelectQueryBuilder<DB, TB, object>) => SelectQueryBuilder<DB, TB, O>,
  page: Page,
): Promise<{ items: O[]; total: number }> {
  const [items, total] = await Promise.all([
    rows(filtered).limit(page.limit).offset(page.offset).execute(),
    filtered
      .select(sql<string>`count(*)`.as("n"))
      // The selection is generic here; its one column is known.
      .$castTo<{ n: string }>()
      .executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total.n) };
}
