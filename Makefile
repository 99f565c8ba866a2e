# hmacfs — two commands on a fresh machine:
#   make run    create .venv, install, migrate the embedded SQLite database, serve on 127.0.0.1:8080
#   make test   create .venv with the test extras and run the whole suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_CONFIG ?= var/hmacfs.toml

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: setup.cfg setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@ $(VENV)/.installed

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

test: $(VENV)/.installed-test
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hmacfs tests migrations bench
	$(BIN)/ruff format --check hmacfs tests migrations bench
	$(BIN)/mypy --strict hmacfs

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(SUITES)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
