#!/usr/bin/env bash
# The $2 and $) below belong to the manifests (nginx captures), not the shell.
# shellcheck disable=SC2016
# Cost of the ingress-nginx compatibility layer: N Ingresses, each with a
# regex path, rewrite-target, limit-rps, CORS and a body-size annotation
# (every tenth with a canary), read and translated by `gatehouse validate`
# with and without --nginx-compat, and converted by `gatehouse migrate
# --emit apiroute`. Release binary; hyperfine medians.
#
#   bench/nginx-compat.sh            # N=1000
#   N=5000 bench/nginx-compat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
N=${N:-1000}
command -v hyperfine >/dev/null || { echo "missing hyperfine (apt-get install hyperfine)" >&2; exit 1; }
build_release
dir=$work
gatehouse=$bin/gatehouse
{
  printf 'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gatehouse}\nspec: {controller: gatehouse.dev/ingress-controller}\n'
  for i in $(seq "$N"); do
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: bench}\nspec: {ports: [{port: 80}]}\n' "$i"
    printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing-%d\n  namespace: bench\n  annotations:\n' "$i"
    printf '    nginx.ingress.kubernetes.io/rewrite-target: /$2\n    nginx.ingress.kubernetes.io/limit-rps: "50"\n'
    printf '    nginx.ingress.kubernetes.io/enable-cors: "true"\n    nginx.ingress.kubernetes.io/proxy-body-size: 8m\n'
    printf 'spec:\n  ingressClassName: gatehouse\n  rules:\n  - host: h%d.example\n    http:\n      paths:\n' "$i"
    printf '      - {path: "/api(/|$)(.*)", pathType: ImplementationSpecific, backend: {service: {name: svc-%d, port: {number: 80}}}}\n' "$i"
    if [ $((i % 10)) -eq 0 ]; then
      printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing-%d-canary\n  namespace: bench\n  annotations:\n' "$i"
      printf '    nginx.ingress.kubernetes.io/canary: "true"\n    nginx.ingress.kubernetes.io/canary-weight: "10"\n'
      printf 'spec:\n  ingressClassName: gatehouse\n  rules:\n  - host: h%d.example\n    http:\n      paths:\n' "$i"
      printf '      - {path: "/api(/|$)(.*)", pathType: ImplementationSpecific, backend: {service: {name: svc-%d, port: {number: 80}}}}\n' "$i"
    fi
  done
} > "$dir/ingresses.yaml"
echo "$N Ingresses (+$((N / 10)) canaries), $(wc -c < "$dir/ingresses.yaml") bytes"
# Without --nginx-compat the canaries conflict with their main Ingresses
# (an error, exit status 1): -i keeps hyperfine timing it anyway.
hyperfine -N -i --warmup 2 --runs 10 \
  "$gatehouse validate -f $dir/ingresses.yaml" \
  "$gatehouse validate --nginx-compat -f $dir/ingresses.yaml" \
  "$gatehouse migrate --emit apiroute -f $dir/ingresses.yaml"
