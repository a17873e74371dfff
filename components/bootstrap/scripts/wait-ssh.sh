#!/usr/bin/env bash
# Waits until a new node accepts SSH with the stack's key (runs on the first control plane, the
# jump host, before the node's first step). pulumi-command reaches such a node through the jump
# host and, when the handshake fails, retries it over the connection that failed, which the node
# has closed already (pulumi-command 1.2.1, provider/pkg/provider/remote/connection.go: Dial): a
# node whose sshd answers before its guest agent has installed the key from the instance
# metadata would fail its first step for good. This step asks the node's sshd whether it would
# accept the key, without the private key: ssh offers the public key alone, and sshd answers
# "Server accepts key" (the SSH "publickey" query of RFC 4252, section 7) once the key is installed.
#
# Bounded: KC_SSH_WAIT seconds (VM boot and the guest agent's first run take well under that).
# Without an ssh client on this host, it waits for the node's sshd banner only, with a warning.
#
# Inputs: NODE_NAME; NODE_ADDRESS (the node's internal address); SSH_USER; SSH_PUBLIC_KEY (one
#         authorized_keys line); optional KC_SSH_WAIT (900 s), KC_SSH_POLL (5 s).
# Stdout: nothing.
set -euo pipefail
if ! declare -F kc_log >/dev/null 2>&1; then
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi
KC_STEP=wait-ssh

: "${NODE_NAME:?NODE_NAME is required}"
: "${NODE_ADDRESS:?NODE_ADDRESS is required (the internal address of the node)}"
: "${SSH_USER:?SSH_USER is required}"
: "${SSH_PUBLIC_KEY:?SSH_PUBLIC_KEY is required (the public key of the stack)}"
KC_SSH_WAIT=${KC_SSH_WAIT:-900}
KC_SSH_POLL=${KC_SSH_POLL:-5}
[[ $KC_SSH_WAIT =~ ^[1-9][0-9]*$ ]] || kc_die "KC_SSH_WAIT must be a positive whole number of seconds, not '$KC_SSH_WAIT'"
[[ $KC_SSH_POLL =~ ^[0-9]+(\.[0-9]+)?$ ]] || kc_die "KC_SSH_POLL must be a number of seconds, not '$KC_SSH_POLL'"
kc_is_ip "$NODE_ADDRESS" || kc_die "NODE_ADDRESS '$NODE_ADDRESS' is not an IPv4 or IPv6 address"
[[ $SSH_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || kc_die "SSH_USER '$SSH_USER' is not a user name"

# kc_key_accepted PUBLIC_KEY_FILE : the node's sshd says it would accept the key (one attempt).
kc_key_accepted() {
  local out
  out=$(timeout 30 ssh -v -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
    -o PreferredAuthentications=publickey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -i "$1" -l "$SSH_USER" "$NODE_ADDRESS" true </dev/null 2>&1) || true
  [[ $out == *"Server accepts key"* ]]
}

# kc_banner : the node's sshd answers on port 22 with its SSH banner (one attempt).
kc_banner() {
  local banner=""
  # shellcheck disable=SC2016 # the inner shell expands its own $1 (the address, passed as an argument)
  banner=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/22" && head -c 4 <&3' _ "$NODE_ADDRESS" </dev/null 2>/dev/null) || true
  [[ $banner == SSH- ]]
}

kc_wait_ssh_main() {
  local start=$SECONDS dir check
  if command -v ssh >/dev/null 2>&1; then
    dir=$(mktemp -d) || kc_die "cannot create a temporary directory"
    kc_on_exit "rm -rf -- $(printf '%q' "$dir")"
    printf '%s\n' "$SSH_PUBLIC_KEY" >"$dir/key.pub"
    check="kc_key_accepted $dir/key.pub"
    kc_log "waiting for $NODE_NAME ($NODE_ADDRESS) to accept the stack's SSH key (at most ${KC_SSH_WAIT}s)"
  else
    check=kc_banner
    kc_warn "no ssh client on this host: waiting for the sshd of $NODE_NAME ($NODE_ADDRESS) only, not for its key"
  fi
  until $check; do
    if ((SECONDS - start >= KC_SSH_WAIT)); then
      kc_die "$NODE_NAME ($NODE_ADDRESS) does not accept the stack's SSH key as $SSH_USER after ${KC_SSH_WAIT}s" \
        "(is the VM running? see its serial console: gcloud compute instances get-serial-port-output $NODE_NAME)"
    fi
    sleep "$KC_SSH_POLL"
  done
  kc_log "$NODE_NAME accepts SSH after $((SECONDS - start))s"
}

kc_wait_ssh_main </dev/null
