# Shared by authorizer/Makefile and signer/Makefile: how `sam build` (BuildMethod: makefile)
# assembles a function. sam runs this from a scratch copy of the function folder, so every
# path is taken from where this file really is.
#
# The artifact holds the handler, the `iotauth` domain package without the parts only the
# CLI and the local stand-in use, and the function's pure-Python requirements for
# python3.13 on arm64, compiled to bytecode. boto3 is not bundled: the Lambda runtime
# provides it.
REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
PYTHON3 ?= python3
PIP ?= $(PYTHON3) -m pip

define build_function
	mkdir -p $(ARTIFACTS_DIR)
	cp $(REPO)/$(1)/app.py $(ARTIFACTS_DIR)/
	rm -rf $(ARTIFACTS_DIR)/iotauth && cp -r $(REPO)/iotauth $(ARTIFACTS_DIR)/
	cd $(ARTIFACTS_DIR)/iotauth && rm -rf local cli.py cli __pycache__ */__pycache__
	$(PIP) install -q --disable-pip-version-check --no-compile --target $(ARTIFACTS_DIR) \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 \
		--only-binary=:all: -r $(REPO)/$(1)/requirements.txt
	# Lambda's file system is read-only: without bytecode in the artifact every cold start
	# compiles iotauth and Powertools from source. unchecked-hash pycs stay valid after copy.
	$(PYTHON3) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(ARTIFACTS_DIR)
endef
