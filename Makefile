# mailtix: `make install` sets up .venv, then ingests the example Maildir into a throwaway store
# and prints its tickets (no server needed); `make test` installs everything the tests need
# (Dovecot via apt-get when root) and runs ruff and pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_PKGS := dovecot-imapd dovecot-pop3d groff-base postgresql
# Two pytest workers (xdist), one per core: each starts its own Dovecot, PostgreSQL and SMTP
# servers on free ports, so the suite (600+ tests against real servers) stays under 5 minutes.
TEST_WORKERS ?= 2

.PHONY: install test lint deps test-deps dovecot demo man bench bench-quick fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# An editable install writes no bytecode for mailtix (a wheel install would), and with
# PYTHONDONTWRITEBYTECODE set every command would compile its modules anew: ~40 ms a run.
deps: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q mailtix

install: deps
	@echo "mailtix installed in $(VENV): $$($(BIN)/mailtix --version)"
	@echo "first run: the example Maildir (examples/maildir) into a throwaway store"
	MAILTIX_BIN=$(BIN)/mailtix sh examples/first-run.sh
	@echo "next: $(BIN)/mailtix init && $(BIN)/mailtix account add --help"

test-deps: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q mailtix

# Dovecot serves the tests' IMAP and POP3; groff checks that the man pages render; PostgreSQL
# (started by the tests in a temp dir) is the store's second backend.
dovecot:
	@if command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ] && \
	    [ -x /usr/lib/dovecot/pop3 ] && command -v groff >/dev/null 2>&1 && \
	    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing $(TEST_PKGS) with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PKGS) >/dev/null; \
	else \
		echo "missing: run 'sudo apt-get install $(TEST_PKGS)' (the tests need them)"; exit 1; \
	fi

lint: test-deps
	$(BIN)/ruff check .

test: test-deps dovecot lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

demo: test-deps dovecot
	$(BIN)/python examples/demo.py

man: deps
	$(BIN)/python -m mailtix.manpage man/

bench: test-deps dovecot
	$(BIN)/python bench/run.py

bench-quick: test-deps dovecot
	$(BIN)/python bench/run.py --quick

# The parser's property test with many more examples than `make test` runs (not in CI);
# failures are kept in .hypothesis/ and replayed first on the next run.
FUZZ_EXAMPLES ?= 20000
fuzz: test-deps
	MAILTIX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -x tests/test_parse_fuzz.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis
