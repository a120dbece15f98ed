import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

/**
 * A self-signed certificate for 127.0.0.1 (and localhost), made with openssl as docs/gateway.md
 * shows operators: PEM files in a new temporary folder.
 */
export async function selfSignedCertificate(
  commonName: string,
): Promise<{ certFile: string; keyFile: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), "mm-tls-"));
  const [certFile, keyFile] = [path.join(dir, "cert.pem"), path.join(dir, "key.pem")];
  await promisify(execFile)("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-days", "1", "-subj", `/CN=${commonName}`],
    ...[
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
  ]);
  return { certFile, keyFile };
}
