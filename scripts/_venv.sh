# Sourced by start.sh and test.sh: make .venv (Python 3.11) and install a requirements file into it.
# Usage: install_venv requirements.txt
install_venv() {
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
        echo "Python 3.11 or newer is needed (tried '$python'); set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        if ! "$python" -m venv .venv 2>/dev/null; then
            echo "Installing python3-venv with apt" >&2
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv .venv
        fi
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"
}
