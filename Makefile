# Two commands on a fresh machine: `make demo` (a real replication, offline) and `make test`.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast clean-runs
setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/repro demo

# pytest exits 5 when it collects nothing: that means a broken setup, never a pass.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: the setup is broken" >&2; exit 1; fi; exit $$rc

test-fast:
	$(PY) -m pytest -m "not docker and not slow and not browser" $(PYTEST_ARGS)

clean-runs:
	rm -rf runs
