# Sourced by the other scripts: makes .venv from requirements.txt (and this package, editable) when it is
# missing or older than requirements.txt, then puts it first on PATH.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Setting up $venv from requirements.txt (once; a minute or two)..." >&2
  python3 -m venv "$venv"
  # pip's chatter goes to a log, shown only if the install fails.
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$venv/bin/python" -m pip install --disable-pip-version-check -r "$root/requirements.txt" -e "$root"; } \
       > "$venv/pip-install.log" 2>&1; then
    tail -n 40 "$venv/pip-install.log" >&2
    echo "Installing the requirements failed; the full log is $venv/pip-install.log." >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"

# The policy pack's own virtualenv, policy/venv (PulumiPolicy.yaml), made from policy/requirements.txt when it is
# missing or older than it: what `pulumi preview --policy-pack policy` runs the pack with.
ensure_policy_venv() {
  local pvenv="$root/policy/venv" pwant
  pwant="$(cat "$root/policy/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$pvenv/bin/python" ] || [ "$(cat "$pvenv/.requirements.sha256" 2>/dev/null)" != "$pwant" ]; then
    echo "Setting up $pvenv from policy/requirements.txt (once)..." >&2
    python3 -m venv "$pvenv"
    # From inside policy/: its requirements install the project with `-e ..`, which pip resolves against the
    # directory it runs in.
    if ! (cd "$root/policy" && venv/bin/python -m pip install --disable-pip-version-check -r requirements.txt) \
         > "$pvenv/pip-install.log" 2>&1; then
      tail -n 40 "$pvenv/pip-install.log" >&2
      echo "Installing the policy pack's requirements failed; the full log is $pvenv/pip-install.log." >&2
      return 1
    fi
    echo "$pwant" > "$pvenv/.requirements.sha256"
  fi
}
