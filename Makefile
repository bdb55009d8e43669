# Two commands on a fresh machine: `make demo` (a real replication, offline) and `make test`.
# Each runs the idempotent setup first and ends by saying how long it all took.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup demo test test-fast clean-runs
setup:
	bash scripts/setup.sh

demo:
	@t0=$$SECONDS; bash scripts/setup.sh && .venv/bin/repro demo $(DEMO_ARGS) | tee .demo-last; rc=$${PIPESTATUS[0]}; \
	[ -f .demo-last ] && report=$$(tail -n 1 .demo-last); rm -f .demo-last; \
	echo "make demo: exit $$rc after $$(( (SECONDS - t0) / 60 )) min $$(( (SECONDS - t0) % 60 )) s (setup included); report: $${report:-none}"; \
	exit $$rc

# pytest exits 5 when it collects nothing: that means a broken setup, never a pass. Setup has made
# sure a Docker engine answers and installed Chromium, tesseract, bubblewrap and the packages; ../shared
# is checked out beside the repo. A missing requirement fails here, never skips (REPRO_REQUIRE_ALL=1,
# tests/conftest.py need); only declared skips remain (no GPU runtime, no gVisor, a backend's known
# exception), listed at the end.
test:
	@t0=$$SECONDS; bash scripts/setup.sh || exit $$?; \
	REPRO_REQUIRE_ALL=1 $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: the setup is broken" >&2; rc=1; fi; \
	echo "make test: exit $$rc after $$(( (SECONDS - t0) / 60 )) min $$(( (SECONDS - t0) % 60 )) s (setup included)"; \
	exit $$rc

test-fast:
	$(PY) -m pytest -m "not docker and not slow and not browser" $(PYTEST_ARGS)

clean-runs:
	rm -rf runs
