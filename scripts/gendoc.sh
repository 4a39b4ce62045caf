#!/usr/bin/env bash
# gendoc.sh: regenerate the man page, the Markdown CLI reference and the shell
# completions in cmd/snapfs/doc/ from the command definitions, and the exit-code
# table of README.md from cmd/snapfs/internal/exitcode. Run it after
# changing a command; TestGeneratedDocsUpToDate (go test ./cmd/snapfs, run by
# CI) fails while the checked-in copies differ.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
mkdir -p cmd/snapfs/doc
go run ./cmd/snapfs gen-docs cmd/snapfs/doc README.md
