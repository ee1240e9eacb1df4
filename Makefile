# Set-up and entry points. Every target installs what it needs on a fresh
# Debian machine and is quick when everything is already there.

VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.installed
APT_PKGS  := espeak-ng wamerican libportaudio2 chromium chromium-driver
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system test demo clean

## system: Debian packages (espeak-ng for speech, wamerican's word list for reading sentences, PortAudio for sound cards, Chromium for browser tests)
system:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## setup: system packages, the virtual environment and the package in editable mode with dev extras
setup: system $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchaudio==2.11.0
	$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

## test: the whole test suite (CI runs exactly this)
test: setup
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/pytest -q

## demo: serve the default agent (voice API + browser page); it prints the page's URL
demo: setup
	$(VENV)/bin/duplex serve

clean:
	rm -rf $(VENV) *.egg-info
