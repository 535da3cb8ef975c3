#!/bin/sh
# The first run of `make install`: mailtix ingests the example Maildir (examples/maildir: a
# customer question and her follow-up, an umlaut subject, an HTML-only mail, attachments, a
# bounce) into a throwaway store and prints the ticket list. No server, no credentials; the
# store is removed afterwards. MAILTIX_BIN: the mailtix command to use (default: mailtix).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT INT TERM
export MAILTIX_DATA="$data" MAILTIX_LOG_DIR="$data/log"
# shellcheck disable=SC2086 # MAILTIX_BIN may be "python -m mailtix"
${MAILTIX_BIN:-mailtix} --config "$here/first-run.toml" run
# shellcheck disable=SC2086
${MAILTIX_BIN:-mailtix} --config "$here/first-run.toml" ticket list
