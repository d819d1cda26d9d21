# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_MEMBERS ?= 5000
export TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test install serve migrate demo clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) handbook demo --if-empty --members $(DEMO_MEMBERS)

# Create the virtualenv, install, migrate, load demo data if the database is empty, and serve.
run: demo
	@echo "Serving the handbook: console http://$(HOST):$(PORT)/ (sign in with a demo login above), API http://$(HOST):$(PORT)/api/v1 (docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 wsgi:app

# The whole suite on SQLite and, when TEST_DATABASE_URL is reachable, on PostgreSQL: the two backends run
# in parallel (tests/run_suite.py; SUITE_PARALLEL=0 runs them one after the other).
test: install
	$(BIN)/python -m tests.run_suite tests

clean:
	rm -rf $(VENV) instance .pytest_cache mutants

# Mutation testing (not part of `make test`): mutmut (setup.cfg [mutmut]) mutates the modules below one
# at a time, runs the tests that call each mutated function on SQLite, and docs/mutation-report.md lists
# the mutants no test noticed. Each module gets at most MUTATE_SECONDS; results are kept in mutants/, so
# running it again goes on where it stopped and re-checks the survivors. mutants/ is git-ignored, so its
# results are also saved to tests/mutation-cache/ and a fresh clone starts from them (MUTATE_FRESH=1: from nothing).
# Tests changed since mutmut traced them are traced again (tests.mutation_cache retrace).
# Survivors explained for their current diff are not run again, nor mutants explained as PostgreSQL-only
# code, which the run on PostgreSQL judges (MUTATE_RECHECK=1: they are).
MUTATE_MODULES ?= handbook.permissions handbook.auth content.access content.progress content.acknowledgements \
	push.schedule push.fanout
MUTATE_SECONDS ?= 1200
MUTATE_CHILDREN ?= 2
# The mutants SQLite cannot judge (PostgreSQL-only code) are then run on PostgreSQL, when reachable, in this
# database (its own, created when missing: the tests empty it). See tests/mutation_postgresql.py.
MUTATE_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/handbook_mutate
.PHONY: mutate
mutate: install
	@if [ -n "$(MUTATE_FRESH)" ]; then rm -rf mutants; else $(BIN)/python -m tests.mutation_cache restore; fi
	@mkdir -p mutants
	@$(BIN)/python -m tests.mutation_cache retrace
	@for module in $(MUTATE_MODULES); do \
		todo=$$(MUTATE_RECHECK=$(MUTATE_RECHECK) $(BIN)/python -m tests.mutation_report --pending $$module) || exit 1; \
		if [ -z "$$todo" ]; then echo "mutmut: $$module: nothing to run on SQLite (every mutant killed or explained)"; else \
			echo "mutmut: $$module (at most $(MUTATE_SECONDS) s, log in mutants/$$module.log)"; \
			TEST_BACKENDS=sqlite timeout $(MUTATE_SECONDS) $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) \
				$$todo >mutants/$$module.log 2>&1; \
			status=$$?; [ $$status -eq 124 ] && echo "  stopped after $(MUTATE_SECONDS) s: run again to go on"; \
			[ $$status -ne 0 ] && [ $$status -ne 124 ] && { tail -n 30 mutants/$$module.log; exit $$status; }; \
			$(BIN)/python -m tests.mutation_cache save; \
		fi; \
		TEST_DATABASE_URL=$(MUTATE_DATABASE_URL) MUTATE_RECHECK=$(MUTATE_RECHECK) \
			$(BIN)/python -m tests.mutation_postgresql $$module --seconds $(MUTATE_SECONDS) || exit 1; \
		$(BIN)/python -m tests.mutation_cache save; \
	done; true
	$(BIN)/python -m tests.mutation_report

# Benchmark (bench/run.py): a dedicated PostgreSQL database (BENCH_DATABASE_URL, default
# postgresql://postgres@127.0.0.1:5432/handbook_bench, recreated), gunicorn and wrk; results in bench/results/.
.PHONY: bench bench-quick bench-install
bench-install: install
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt

bench: bench-install
	$(BIN)/python -m bench.run --members 440000

bench-quick: bench-install
	$(BIN)/python -m bench.run --members 20000 --quick
