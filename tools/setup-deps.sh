#!/usr/bin/env bash
# Installs what hmst needs on a fresh Debian machine, and only what is missing:
# Debian's OpenBLAS, FAISS, libnuma and zlib development packages, OpenMPI (mpirun and libmpi,
# loaded at run time only by data-parallel training), the data packages fortunes and
# miscfiles (its countries table feeds `hmst facts generate`), and numpy + pytest for Python, with
# openai (the official client the server is tested with) and schemathesis (the server's API fuzz).
# Run as root (make demo / make test call it); as another user it only reports what is missing.
set -euo pipefail

debs=(libopenblas-dev libfaiss-dev libnuma-dev zlib1g-dev pkg-config fortunes miscfiles openmpi-bin libopenmpi-dev)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "hmst setup: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "hmst setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
pymissing=()
"$py" -c "import numpy" 2>/dev/null || pymissing+=(numpy)
"$py" -c "import pytest" 2>/dev/null || pymissing+=(pytest)
"$py" -c "import openai" 2>/dev/null || pymissing+=(openai)
"$py" -c "import schemathesis" 2>/dev/null || pymissing+=(schemathesis)
if ((${#pymissing[@]})); then
    echo "hmst setup: pip installing ${pymissing[*]}"
    "$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${pymissing[@]}"
fi

command -v swift >/dev/null || [[ -x /opt/swift/usr/bin/swift ]] || {
    echo "hmst setup: no Swift toolchain found (expected swift on PATH or /opt/swift/usr/bin)" >&2
    exit 1
}
