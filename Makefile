# hmacfs — two commands on a fresh machine:
#   make run    create .venv, install, migrate the embedded SQLite database, serve on 127.0.0.1:8080
#   make test   create .venv with the test extras and run the whole suite (SQLite and PostgreSQL)
#               (with node and npm on the machine, also the tus-js-client interop test, and with
#               Debian's chromium too, the browser test of the page at / (playwright-core);
#               with Debian's prosody, prosody-modules and ejabberd, the XMPP interop tests)
#   make lock   re-resolve requirements.lock after a change to setup.cfg (see docs/dependencies.md)
#   make fuzz   schemathesis against the live server on PostgreSQL, longer than the suite's bounded run
# Every install takes its versions from requirements.lock (pip's constraints), so a
# fresh clone runs the versions CI tested.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_CONFIG ?= var/hmacfs.toml
LOCK   := requirements.lock
UV_VERSION := 0.13.9
JS_TESTS := tests/e2e/js

.PHONY: run test lint bench clean lock lock-upgrade fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: setup.cfg setup.py $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-test: setup.cfg setup.py $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test,dev]'
	touch $@ $(VENV)/.installed

# requirements.lock: every package of the install and of the test and dev extras,
# pinned, resolved from PyPI by uv. `make lock` keeps the current pins that still
# satisfy setup.cfg; `make lock-upgrade` moves every pin to the newest allowed.
$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'

# The machines' Python: a bare "3.11" means 3.11.0, which would pin backports that 3.11.7 never installs.
LOCK_COMPILE = $(BIN)/uv pip compile setup.cfg --extra test --extra dev --python-version 3.11.7 \
	--no-emit-index-url --custom-compile-command 'make lock' --quiet --output-file $(LOCK)

lock: | $(BIN)/uv
	$(LOCK_COMPILE)

lock-upgrade: | $(BIN)/uv
	$(LOCK_COMPILE) --upgrade

# A local configuration with freshly generated secrets, made once.
$(RUN_CONFIG): etc/hmacfs.toml | $(BIN)/python
	mkdir -p $(dir $@)
	$(BIN)/python -c "import re, secrets, sys; t = open('etc/hmacfs.toml').read(); \
	t = re.sub(r'(?m)^secret = \"\"', 'secret = \"%s\"' % secrets.token_hex(32), t); \
	t = re.sub(r'(?m)^jwt_secret = \"\"', 'jwt_secret = \"%s\"' % secrets.token_hex(32), t); \
	open(sys.argv[1], 'w').write(t)" $@
	@echo "wrote $@ with new secrets"

run: $(VENV)/.installed $(RUN_CONFIG)
	HMACFS_CONFIG=$(RUN_CONFIG) $(BIN)/hmacfs db upgrade
	@echo "hmacfs: http://127.0.0.1:8080/health  (config: $(RUN_CONFIG); a token: HMACFS_CONFIG=$(RUN_CONFIG) $(BIN)/hmacfs token issue --account <uuid>)"
	HMACFS_CONFIG=$(RUN_CONFIG) $(BIN)/hmacfs serve --bind 127.0.0.1:8080

# The pinned npm packages of the end-to-end tests (tus-js-client, playwright-core). Without npm the
# tests that need them are skipped (it says why); with npm they are always installed.
$(JS_TESTS)/node_modules/.package-lock.json: $(JS_TESTS)/package.json $(JS_TESTS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS_TESTS) && npm ci --no-audit --no-fund; \
	else \
		echo "npm not found: the tus-js-client and browser tests will be skipped"; \
	fi

test: $(VENV)/.installed-test $(JS_TESTS)/node_modules/.package-lock.json
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hmacfs tests migrations bench
	$(BIN)/ruff format --check hmacfs tests migrations bench
	$(BIN)/mypy --strict hmacfs
	$(BIN)/lint-imports

# schemathesis against the live server on PostgreSQL (tests/e2e/test_fuzz.py), longer than CI's
# bounded run: FUZZ_EXAMPLES per operation, FUZZ_SECONDS in all.
FUZZ_EXAMPLES ?= 100
FUZZ_SECONDS  ?= 900
fuzz: $(VENV)/.installed-test
	HMACFS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HMACFS_FUZZ_SECONDS=$(FUZZ_SECONDS) \
		$(BIN)/pytest -s -p no:cacheprovider tests/e2e/test_fuzz.py -k postgresql

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(SUITES)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache $(JS_TESTS)/node_modules
