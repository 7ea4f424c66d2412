# Deployment artefacts and checks for infra/ (included from the Makefile, which defines
# VENV, PY, STAGE and the .venv target).
#   make package STAGE=prod   -> build/package/{sam.json,deployment.zip} (SAM, one stack)
#   make check-infra          -> cfn-lint (errors fail) on both templates + tests/test_infra.py

PACKAGE_DIR := build/package
AWS_DEFAULT_REGION ?= us-east-1

.PHONY: package check-infra

# The merge template switches on ReportBatchItemFailures for every SQS event source
# (chalice cannot, aws/chalice#2029). JOBGATE_STAGE sets the queue names app.py subscribes to
# (jobgate-$(STAGE)-*); a JOBGATE_QUEUE_PREFIX left in the shell would override it, so it is unset.
package: .venv
	@case "$(STAGE)" in dev|prod) ;; *) echo "error: STAGE must be dev or prod" >&2; exit 1;; esac
	rm -rf $(PACKAGE_DIR)
	env -u JOBGATE_QUEUE_PREFIX AWS_DEFAULT_REGION=$(AWS_DEFAULT_REGION) JOBGATE_STAGE=$(STAGE) \
	  $(VENV)/bin/chalice package --stage $(STAGE) --merge-template infra/chalice-merge.json $(PACKAGE_DIR)/
	@ls -l $(PACKAGE_DIR)/deployment.zip

check-infra: package
	$(VENV)/bin/cfn-lint --non-zero-exit-code error infra/template.yaml $(PACKAGE_DIR)/sam.json
	$(PY) -m pytest -q tests/test_infra.py
