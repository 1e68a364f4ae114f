"""Splits Kubernetes YAML files for the sidecar checks (.ci/sidecar.sh).

    manifests.py OUT_DIR FILE...

Every document goes to OUT_DIR/k8s/ (one file each; a List's items one by
one, since kubernetes-validate has no schema for List), except custom
resources: a PodMonitor goes to OUT_DIR/podmonitor/ as JSON (validated
against its CRD's schema), and the test input's made-up ChatRoom is
skipped. Any other kind without a Kubernetes schema is left in k8s/, where
kubernetes-validate fails on it. Also writes the ConfigMap's wsguard.toml
(examples/kubernetes/configmap.yaml) to OUT_DIR/wsguard.toml.
"""

import json
import os
import sys

import yaml  # PyYAML (YAML 1.1, as Kubernetes reads it), from kubernetes-validate

SKIPPED = {("example.com/v1alpha1", "ChatRoom")}


def items(doc):
    if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
        for item in doc["items"]:
            yield from items(item)
    elif doc is not None:
        yield doc


def main():
    out, files = sys.argv[1], sys.argv[2:]
    for sub in ("k8s", "podmonitor"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    count = 0
    for path in files:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
        for n, doc in enumerate(d for raw in docs for d in items(raw)):
            name = f"{path.replace('/', '_')}.{n}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in SKIPPED:
                continue
            if key == ("monitoring.coreos.com/v1", "PodMonitor"):
                with open(os.path.join(out, "podmonitor", name + ".json"), "w") as f:
                    json.dump(doc, f)
                continue
            with open(os.path.join(out, "k8s", name + ".yaml"), "w") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            count += 1
            if doc.get("kind") == "ConfigMap" and path.endswith("examples/kubernetes/configmap.yaml"):
                with open(os.path.join(out, "wsguard.toml"), "w") as f:
                    f.write(doc["data"]["wsguard.toml"])
    print(f"{count} documents for kubernetes-validate")


main()
