#!/usr/bin/env bash
# Regenerates the DEVELOPMENT-ONLY certificates in certs/: a CA and a server certificate for
# localhost, 127.0.0.1 and ::1 (ECDSA P-256, valid ten years). Their private keys are public
# (committed to the repository), so never use them for a server that others can reach.
# Usage: scripts/gen-certs.sh [OUT_DIR]   (default: certs/ next to this script's parent)
set -euo pipefail
out=${1:-"$(cd "$(dirname "$0")/.." && pwd)/certs"}
days=3650
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/ca.key" -out "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" \
  -subj "/O=KaiChat development/CN=KaiChat DEVELOPMENT CA (do not trust in production)" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/server.key" -out "$out/server.key"
openssl req -new -key "$out/server.key" -subj "/O=KaiChat development/CN=localhost" -out "$tmp/server.csr"
cat > "$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
  -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/ext.cnf" \
  -out "$tmp/leaf.pem"
# The server sends its chain: leaf first, then the CA.
cat "$tmp/leaf.pem" "$out/ca.pem" > "$out/server.pem"
echo "wrote $out/{ca.pem,ca.key,server.pem,server.key} (development only, valid $days days)"
