#!/bin/bash
# Runs inside the sandbox container (cwd /sandbox) before the unit starts:
# the same install script an operator runs, with the binaries just built.
set -eu
./scripts/install.sh /sandbox/bin
# The check drives reloads by editing this file.
install -m 0644 wshostd.toml /etc/wshostd/wshostd.toml
