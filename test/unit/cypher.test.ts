import { describe, expect, it } from "vitest";
import { checkReadOnlyCypher } from "../../src/domain/cypher.ts";

describe("checkReadOnlyCypher", () => {
  it.each([
    "MATCH (i:IP) RETURN i LIMIT 50",
    "",
    "MATCH (h:Host {ip: $ip})-[:CONNECTS_TO]->(d) WHERE d.created > 0 RETURN d.set AS set_value, count(*) AS n",
    "MATCH (n) WHERE n.name = 'CREATE (x)' OR n.note = \"DELETE everything\" RETURN n",
    "MATCH (n:`SET` {`delete`: 1}) RETURN n.`merge`",
    "MATCH (n) // then CREATE (m)\nRETURN n /* DETACH DELETE n */",
    "MATCH (n) RETURN {create: 1, remove: n.remove} AS m",
    "MATCH (a)-[r:CREATE|DELETE|!REMOVE]->(b) RETURN r",
    "MATCH (n) WHERE n:Set&Merge RETURN $set, $delete",
    "CALL db.labels() YIELD label RETURN label",
    "CALL db.relationshipTypes()",
    "call db.propertyKeys",
    "CALL db.schema.visualization()",
    "CALL `db`.`labels`()",
    "MATCH (n) CALL { WITH n MATCH (n)--(m) RETURN count(m) AS degree } RETURN n, degree",
    "MATCH (n) CALL (n) { MATCH (n)--(m) RETURN count(m) AS degree } RETURN degree",
    "MATCH (p:Place) RETURN point.distance(p.location, point({x: 0, y: 0})) AS d",
    "MATCH (n) WHERE n.name STARTS WITH 'x' RETURN toUpper(n.name), n.load, n.csv",
    "RETURN 'it\\'s SET' AS s, \"a \\\" REMOVE\" AS t",
    "MATCH (n) WHERE n.x != 1 RETURN n",
  ])("reads: %s", (query) => {
    expect(checkReadOnlyCypher(query)).toBeNull();
  });

  it.each([
    ["CREATE (n:Host)", "CREATE"],
    ["MATCH (n) MERGE (m:X) RETURN m", "MERGE"],
    ["MATCH (n) DELETE n", "DELETE"],
    ["MATCH (n) DETACH DELETE n", "DETACH DELETE"],
    ["match (n) set n.x = 1", "SET"],
    ["MATCH (n) REMOVE n:Label", "REMOVE"],
    ["DROP INDEX host_ip", "DROP"],
    ["LOAD CSV FROM 'file:///x.csv' AS row RETURN row", "LOAD CSV"],
    ["MATCH (n) FOREACH (x IN [1] | SET n.y = x)", "FOREACH"],
    ["MATCH (n) CALL { WITH n SET n.x = 1 } IN TRANSACTIONS", "SET"],
    [
      "MATCH (n) CALL { WITH n RETURN n AS m } IN TRANSACTIONS OF 10 ROWS RETURN m",
      "CALL { … } IN TRANSACTIONS",
    ],
    [
      "MATCH (n) CALL { WITH n RETURN n AS m } IN 4 CONCURRENT TRANSACTIONS RETURN m",
      "CALL { … } IN TRANSACTIONS",
    ],
    ["CALL apoc.create.node(['X'], {})", "CALL apoc.create.node"],
    ["CALL db.createLabel('X')", "CALL db.createLabel"],
    ["CALL dbms.killQueries(['q'])", "CALL dbms.killQueries"],
    ["CALL db.schema()", "CALL db.schema"],
    ["CALL `apoc`.`periodic`.`iterate`('a', 'b', {})", "CALL apoc.periodic.iterate"],
    ["MATCH (n) RETURN n; CREATE (m)", "CREATE"],
    ["MATCH (n) /* comment */ CrEaTe (m)", "CREATE"],
    ["USE system SHOW USERS", "USE"],
    ["SHOW TRANSACTIONS", "SHOW"],
    ["LOAD CSV FROM 'http://127.0.0.1:9/x' AS row RETURN row", "LOAD CSV"],
    ["load csv from 'http://127.0.0.1:9/x' as row return row", "LOAD CSV"],
    ["MATCH (n) WITH n LoAd/* hidden */CsV WITH HEADERS FROM $u AS r RETURN r", "LOAD CSV"],
    ["MATCH (n)\n\tLOAD\n CSV FROM 'http://x' AS r RETURN r", "LOAD CSV"],
    ["MATCH (n) // comment\nLOAD CSV FROM 'http://x' AS r RETURN r", "LOAD CSV"],
    ["CALL { LOAD CSV FROM 'http://x' AS r RETURN r } RETURN r", "LOAD CSV"],
    ["EXPLAIN MATCH (n) RETURN n", "EXPLAIN"],
    ["CYPHER runtime=slotted MATCH (n) RETURN n", "CYPHER"],
    ["MATCH (n) FINISH", "FINISH"],
    ["INSERT (n:Host)", "INSERT"],
    ["RETURN apoc.load.json('http://x') AS j", "apoc.load.json()"],
    ["RETURN `apoc`.`text`.`join`(['a'], ',') AS j", "apoc.text.join()"],
    ["MATCH (n) RETURN apoc . util . sha1 ( [n.x] )", "apoc.util.sha1()"],
    ["MATCH (n) WHERE n.name = 'x' RETURN n UNION MATCH (m) SET m.y = 1 RETURN m", "SET"],
  ])("refuses %s (%s)", (query, clause) => {
    const message = checkReadOnlyCypher(query);
    expect(message).not.toBeNull();
    expect(message?.startsWith(`${clause} is not allowed`)).toBe(true);
  });

  it("names the first offending clause and says why", () => {
    expect(checkReadOnlyCypher("MATCH (n) SET n.a = 1 DELETE n")).toBe(
      "SET is not allowed: condition queries may only use MATCH, OPTIONAL MATCH, WHERE, WITH, RETURN, ORDER BY, SKIP, LIMIT, UNWIND, UNION and CALL",
    );
    expect(checkReadOnlyCypher("CALL apoc.do.it()")).toContain(
      "may only call db.labels, db.relationshipTypes, db.propertyKeys and db.schema.*",
    );
  });

  it("refuses text that could hide a clause from the scan", () => {
    expect(checkReadOnlyCypher("MATCH (n) WHERE n.a = 'open RETURN n")).toBe(
      "unterminated string literal in query",
    );
    expect(checkReadOnlyCypher("MATCH (n) /* CREATE (m)")).toBe("unterminated /* comment in query");
    expect(checkReadOnlyCypher("MATCH (`n) RETURN 1")).toBe("unterminated `name` in query");
    expect(checkReadOnlyCypher("CALL")).toContain("CALL (no procedure name)");
  });
});
