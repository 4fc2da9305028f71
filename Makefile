# CareLoop: `make run` to set up and start everything, `make test` to set up and test everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APP_PY  := .venvs/app/bin/python
RASA    := .venvs/rasa/bin/rasa
export PYTHONPATH := $(CURDIR)
# Rasa's usage telemetry and crash reports (to Sentry) stay off for every command run from here.
export RASA_TELEMETRY_ENABLED := false

.PHONY: help run test setup envs env-file model db lint validate nlu-eval nlu-split churn-eval bench clean

help:
	@echo "make run    set up (environments, model, database, demo data) and start every service"
	@echo "make test   set up and run the whole test suite"
	@echo "make lint   ruff, mypy (strict: gateway, scheduler, CRM) and the import rules; make validate: rasa data validate"
	@echo "make nlu-eval   the model on both test sets side by side: the team's held-out set and the blind set (tests/nlu/)"
	@echo "make nlu-split  the same figures on an 80/20 split of the training data, to judge a change (~15 min)"
	@echo "make churn-eval the churn risk backtested on the demo history beside two baselines (2-4 min)"
	@echo "make bench      speed, capacity, losses, NLU and cost on the real stack (under 20 min; var/bench/)"

run: setup
	@$(APP_PY) -m bot.ops.services

setup: envs env-file model db

envs: .venvs/app/.installed .venvs/rasa/.installed

.venvs/app/.installed: requirements/app.txt tools/venv.sh
	@tools/venv.sh app requirements/app.txt

.venvs/rasa/.installed: requirements/rasa.txt tools/venv.sh
	@tools/venv.sh rasa requirements/rasa.txt

env-file: .venvs/app/.installed
	@$(APP_PY) -m bot.ops.envfile

model: envs env-file
	@$(APP_PY) -m bot.ops.model

db: envs env-file
	@$(APP_PY) -m bot.crm.migrate
	@$(APP_PY) -m bot.crm.demo --if-empty

test: envs env-file model
	@start=$$(date +%s); \
	tools/chromium.sh || exit 1; \
	export CARELOOP_TEST_POSTGRES_URL="$${CARELOOP_TEST_POSTGRES_URL:-$$(tools/postgres.sh)}"; \
	$(APP_PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	echo "make test took $$(( $$(date +%s) - start )) s"; exit $$status

LINTED := bot scheduler tests bench standins tools

lint: envs
	@.venvs/app/bin/ruff check $(LINTED)
	@.venvs/app/bin/ruff format --check $(LINTED)
	@.venvs/app/bin/mypy
	@$(APP_PY) tools/layers.py

validate: envs
	@SQLALCHEMY_SILENCE_UBER_WARNING=1 $(RASA) data validate --fail-on-warnings

nlu-eval: model
	@$(APP_PY) -m bot.ops.nlu_eval

nlu-split: envs
	@$(APP_PY) -m bot.ops.nlu_split $(SPLIT_ARGS)

churn-eval: envs
	@$(APP_PY) -m bot.crm.churn_eval $(CHURN_ARGS)

bench: envs env-file model
	@$(APP_PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .venvs models
