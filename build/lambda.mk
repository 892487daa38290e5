# Shared by authorizer/Makefile and signer/Makefile: how `sam build` (BuildMethod: makefile)
# assembles a function. sam runs this from a scratch copy of the function folder, so every
# path is taken from where this file really is.
#
# The artifact holds the handler, the `iotauth` modules it imports (their static closure,
# tools/artifact_modules.py: never cli or local; tests/sam/test_artifact_contents.py checks
# it), and the function's pure-Python requirements for
# python3.13 on arm64, compiled to bytecode. boto3 is not bundled: the Lambda runtime
# provides it.
REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
# The bytecode must be python3.13's: a pyc of another version is ignored, and on Lambda's
# read-only file system every cold start then compiles iotauth and Powertools from source.
# `make build` puts the project's 3.13 venv first on PATH; a bare `sam build` may not.
# So: the first of these that runs as 3.13 (else python3, and the check below stops the build).
_PY313 := $(shell for p in "$(REPO)/.venv/bin/python" "$$(PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null)" \
	python3.13 python3; do [ -n "$$p" ] && "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
	2>/dev/null && { command -v "$$p"; break; }; done)
PYTHON3 ?= $(or $(_PY313),python3)
PIP ?= $(PYTHON3) -m pip

define build_function
	mkdir -p $(ARTIFACTS_DIR)
	cp $(REPO)/$(1)/app.py $(ARTIFACTS_DIR)/
	rm -rf $(ARTIFACTS_DIR)/iotauth && mkdir -p $(ARTIFACTS_DIR)/iotauth
	cd $(REPO) && for f in $$($(PYTHON3) tools/artifact_modules.py $(1)/app.py); do \
		mkdir -p $(ARTIFACTS_DIR)/$$(dirname $$f) && cp $$f $(ARTIFACTS_DIR)/$$f || exit 1; done
	$(PIP) install -q --disable-pip-version-check --no-compile --target $(ARTIFACTS_DIR) \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 \
		--only-binary=:all: -r $(REPO)/$(1)/requirements.txt
	# Lambda's file system is read-only: without bytecode in the artifact every cold start
	# compiles iotauth and Powertools from source. unchecked-hash pycs stay valid after copy.
	@$(PYTHON3) -c 'import sys; sys.exit(None if sys.version_info[:2] == (3, 13) else \
		f"lambda.mk: {sys.executable} is Python {sys.version.split()[0]}: set PYTHON3 to a python3.13")'
	$(PYTHON3) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(ARTIFACTS_DIR)
endef
