# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test test-kernel test-stress demo lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

# The VM tier: a stock Debian kernel in QEMU with real IPVS, ipvsadm and traffic (tests/kernel/).
test-kernel: $(STAMP)
	$(BIN)/python tests/kernel/vm.py -- sh tests/kernel/tier.sh

# The suite 3 times in a row beside `stress --cpu 2`: one summary line per run (issue 10 item 17).
test-stress: $(STAMP)
	sh tests/stress.sh 3

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

demo: $(STAMP)
	$(BIN)/ipvswm demo

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Long benches, not part of `make bench` (bench/README.md, "Long benches"): keepalived vs ipvswm in the VM.
.PHONY: bench-vm
bench-vm: $(STAMP)
	$(BIN)/python bench/long/vm_keepalived.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
