// Validates docs/asyncapi.yaml with @asyncapi/parser (its $refs to
// docs/schemas/ resolved from the file); exits non-zero on any error.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Parser, fromFile } from "@asyncapi/parser";

const file = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "docs", process.env.ASYNCAPI_FILE ?? "asyncapi.yaml");
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, file).parse();
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity] ?? d.severity;
  console.log(`${level}: ${d.message} at ${d.path.join(".")}`);
}
if (!document || errors.length > 0) {
  console.error(`docs/asyncapi.yaml: ${errors.length} error(s)`);
  process.exit(1);
}
const messages = document.allMessages().all().map((m) => m.name());
console.log(`docs/asyncapi.yaml is valid AsyncAPI ${document.version()}: ${messages.length} messages (${messages.join(", ")})`);
