/** GET /metrics of a listener; `value(series)` reads one sample, e.g. `mm_x_total{a="b"}` (0 when absent). */
export async function scrapeMetrics(baseUrl: string | undefined, token: string | null) {
  const res = await fetch(`${baseUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  const lines = text.split("\n");
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    text,
    value(series: string): number {
      const line = lines.find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : 0;
    },
  };
}
