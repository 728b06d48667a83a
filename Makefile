# The two set-up commands of the README: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
LIBRARY ?=
DATA_DIR ?= $(CURDIR)/.soniquebay-demo

.PHONY: install demo check test bench lint dev

install:
	bash scripts/install.sh

# Scan LIBRARY (or a generated demo library of real tagged audio files) with the embedded default, all stages.
demo: install
	$(PYTHON) -m soniquebay_assets.cli.main demo --data-dir "$(DATA_DIR)" $(if $(LIBRARY),--library "$(LIBRARY)",)

# What a contributor runs before a change: lint, then the fast tier (no slow, Celery, PostgreSQL, deployment or
# multi-host test: the marks in pyproject.toml). Installs nothing: run `make install` (or `make test`) once first.
check:
	ruff check soniquebay_assets soniquebay_assets_tests
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -m fast

# Every tier, as CI runs it. The deployment tests (marker `deployment`: they start the services and mostly wait on
# them) run beside the rest; their report follows the rest's, and either failing fails the target.
test: install
	@log=$$(mktemp); \
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -p no:cacheprovider -m deployment > "$$log" 2>&1 & deployment=$$!; \
	trap 'kill $$deployment 2>/dev/null; rm -f "$$log"' INT TERM; \
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -m "not deployment"; rest=$$?; \
	wait $$deployment; deployed=$$?; \
	echo "--- the deployment tests, run beside the rest:"; cat "$$log"; rm -f "$$log"; \
	exit $$(( rest != 0 ? rest : deployed ))

bench: install
	$(PYTHON) -m soniquebay_assets.cli.main bench scan --files 20000

lint:
	ruff check soniquebay_assets soniquebay_assets_tests

dev:
	$(PYTHON) -m soniquebay_assets.cli.main dev --data-dir "$(DATA_DIR)"
