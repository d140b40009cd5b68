#!/usr/bin/env bash
# build.sh builds kube-apiserver and etcd from the Go module proxy into a cache folder, for
# the Kubernetes backend's integration tests (envtest). A second run finds the binaries
# and does nothing. Prints the folder on stdout: export it as KUBEBUILDER_ASSETS.
#
#   KUBEBUILDER_ASSETS=$(hack/k8stools/build.sh) go test ./internal/backend/kube/...
#
# Environment: K8S_BIN_DIR overrides the folder (default <repo>/.cache/k8s/bin).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${K8S_BIN_DIR:-$root/.cache/k8s/bin}

# Keep these in step with go.mod: the versions the binaries report.
kube_version=v1.37.2
etcd_version=v3.7.0
stamp="kube-apiserver $kube_version, etcd $etcd_version"

if [[ -x $out/kube-apiserver && -x $out/etcd && -f $out/VERSION && "$(cat "$out/VERSION")" == "$stamp" ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
# The default folder ignores itself, so the binaries (over 100 MB) are never committed
# even before the repository's .gitignore names it.
if [[ -z ${K8S_BIN_DIR:-} && ! -f $root/.cache/.gitignore ]]; then
	printf '*\n' > "$root/.cache/.gitignore"
fi
major=${kube_version#v}
major=${major%%.*}
minor=${kube_version#v*.}
minor=${minor%%.*}
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$kube_version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$major"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=$major"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"

echo "building kube-apiserver $kube_version and etcd $etcd_version into $out (a few minutes)" >&2
# Build into temporary names and rename, so an interrupted build never leaves a binary
# that the check above would take for finished.
(
	cd "$here"
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
) >&2
mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
mv "$out/etcd.tmp" "$out/etcd"
echo "$stamp" > "$out/VERSION"
echo "$out"
