#!/usr/bin/env bash
# Does the wheel install and run on every Python that pyproject.toml claims?
#
#   scripts/check_wheel_pythons.sh              # every claimed Python found here
#   scripts/check_wheel_pythons.sh 3.11 3.10    # just these (3.10: shows why it is not claimed)
#
# Builds the wheel once (pip wheel --no-deps), then for each Python: a fresh
# venv in a temp folder, `pip install` of the wheel (its dependencies from the
# configured index), and `mobilenets profile v1-0.25-224` run from outside the
# source tree. Prints a table python -> ok/fail; exit status 1 if a claimed
# Python failed. Pythons are looked up in pyenv (~/.pyenv/versions) and on
# PATH as pythonX.Y. Not part of `make test` or CI: every Python installs
# TensorFlow again, minutes each. KEEP=1 keeps the temp folder (venvs, logs).

set -u
cd "$(dirname "$0")/.."
unset PYTHONPATH  # the venvs must run the installed wheel, not a source tree

claim=$(sed -n 's/^requires-python *= *">= *\([0-9]*\.[0-9]*\)".*/\1/p' pyproject.toml)
[ -n "$claim" ] || { echo "cannot read requires-python from pyproject.toml" >&2; exit 2; }
minor_of() { echo "${1#*.}"; }

# X.Y -> interpreter, from pyenv first, then PATH.
find_python() {
    local v=$1 p
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/python"$v" ; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    p=$(command -v "python$v" 2>/dev/null) && "$p" -c 'pass' 2>/dev/null && echo "$p"
}

if [ $# -gt 0 ]; then
    versions=("$@")
else
    versions=()
    for m in $(seq "$(minor_of "$claim")" 20); do
        [ -n "$(find_python "3.$m")" ] && versions+=("3.$m")
    done
fi
[ ${#versions[@]} -gt 0 ] || { echo "no Python >= $claim found" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-wheel.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$tmp"' EXIT

builder=$(find_python "${versions[0]}")
echo "building the wheel with $builder ..." >&2
# From a copy of the tracked files as they are now: setuptools leaves build/ and
# *.egg-info behind in the folder it builds, and untracked files stay out.
mkdir "$tmp/tree"
git ls-files -z | xargs -0 cp --parents -t "$tmp/tree"
if ! "$builder" -m pip wheel -q --no-deps -w "$tmp/dist" "$tmp/tree" >"$tmp/build.log" 2>&1; then
    tail -5 "$tmp/build.log" >&2
    echo "wheel build failed" >&2
    exit 2
fi
wheel=$(ls "$tmp"/dist/mobilenets-*.whl)
echo "wheel: $(basename "$wheel"); claimed: Python >= $claim" >&2

rows=()
status=0
for v in "${versions[@]}"; do
    claimed=yes
    [ "$(minor_of "$v")" -ge "$(minor_of "$claim")" ] || claimed=no
    py=$(find_python "$v")
    if [ -z "$py" ]; then
        rows+=("$v|$claimed|skip|-|not found")
        continue
    fi
    full=$("$py" -c 'import platform; print(platform.python_version())')
    log="$tmp/$v.log"
    start=$SECONDS
    echo "Python $full: venv, install, profile ..." >&2
    if ! "$py" -m venv "$tmp/venv-$v" >"$log" 2>&1; then
        result=fail; detail="venv: $(tail -1 "$log")"
    elif ! "$tmp/venv-$v/bin/pip" install -q "$wheel" >>"$log" 2>&1; then
        result=fail; detail="install: $(grep -m1 -E '^ERROR' "$log" || tail -1 "$log")"
    elif ! out=$(cd "$tmp" && "$tmp/venv-$v/bin/mobilenets" profile v1-0.25-224 2>>"$log"); then
        result=fail; detail="profile: $(tail -1 "$log")"
    elif ! grep -q "mobilenet_v1_0.25_224" <<<"$out"; then
        result=fail; detail="profile printed no table"
    else
        result=ok; detail="$("$tmp/venv-$v/bin/python" -c 'import keras, tensorflow as tf
print(f"keras {keras.__version__}, tensorflow {tf.__version__}")' 2>/dev/null)"
    fi
    [ "$result" = ok ] || [ "$claimed" = no ] || status=1
    rows+=("$full|$claimed|$result|$((SECONDS - start)) s|$detail")
done

printf '\n%-8s %-8s %-6s %-7s %s\n' python claimed result time detail
printf '%-8s %-8s %-6s %-7s %s\n' ------ ------- ------ ---- ------
for row in "${rows[@]}"; do
    IFS='|' read -r full claimed result took detail <<<"$row"
    printf '%-8s %-8s %-6s %-7s %s\n' "$full" "$claimed" "$result" "$took" "${detail:0:150}"
done
exit $status
