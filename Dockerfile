# The one image of LLM Lab: web (daphne), the control worker (beat) and the run workers run it with different commands
# (see docker-compose.yml).
#
#   docker build -t llm-lab .                                                   # torch from PyPI
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t llm-lab .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu --build-arg GPU_EXTRAS=0 -t llm-lab .
#
# TORCH_INDEX_URL: where torch==2.13.0 comes from. Empty: PyPI, whose Linux x86_64 wheel is built
# for CUDA. Set it to one of PyTorch's indexes to choose the build: a .../whl/cuXXX index for the
# CUDA version of your GPU hosts' driver, or .../whl/cpu for a much smaller image without CUDA.
# requirements/train.txt then finds the pinned torch already installed.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=
# GPU_EXTRAS=1 also installs requirements/gpu.txt (bitsandbytes for qlora); 0 keeps a CPU image small.
ARG GPU_EXTRAS=1
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=lab.settings \
    DJANGO_DEBUG=0 \
    LAB_DATA_DIR=/data

WORKDIR /app

COPY requirements/ requirements/
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    fi \
    && pip install -r requirements/train.txt \
    && if [ "$GPU_EXTRAS" = 1 ]; then pip install -r requirements/gpu.txt; fi

COPY . .

# Static files are baked into the image and served by WhiteNoise; the key only lets settings load.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_DEBUG=0 python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 lab \
    && mkdir -p /data /app/var \
    && chown -R lab:lab /data /app/var

USER lab
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "lab.asgi:application"]
