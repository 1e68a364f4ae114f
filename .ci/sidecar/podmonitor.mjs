// Validates PodMonitor JSON files against the prometheus-operator CRD's
// schema (@kubernetes-models/prometheus-operator, pinned in
// package-lock.json); first checks that a broken one is refused, so the
// check itself cannot pass vacuously. Usage: node podmonitor.mjs FILE...
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("podmonitor.mjs: no PodMonitor to validate");
  process.exit(1);
}
for (const file of files) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const broken = structuredClone(doc);
  broken.spec.podMetricsEndpoints[0].port = 9901; // the schema wants a port name
  let refused = false;
  try {
    new PodMonitor(broken).validate();
  } catch {
    refused = true;
  }
  if (!refused) {
    console.error(`${file}: a PodMonitor with a numeric port was accepted: the validator checks nothing`);
    process.exit(1);
  }
  try {
    new PodMonitor(doc).validate();
  } catch (e) {
    console.error(`${file}: ${e.message}`);
    process.exit(1);
  }
  console.log(`${file}: valid PodMonitor`);
}
