# cbam_viz web app on CPU: docker build -t cbam_viz . && docker run -p 7860:7860 cbam_viz
# ImageNet weights: mount a folder holding weights/imagenet (python -m cbam_viz weights download) at
# /home/user/app/weights/imagenet; without it the app uses the demo weights shipped in weights/demo.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MALLOC_ARENA_MAX=2

# A Chinese face for the words inside pictures on the Chinese page (cbam_viz/fonts.py).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# CPU wheels of torch first (the default ones carry CUDA libraries: gigabytes this image does not need).
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.14,<3" "torchvision>=0.29,<1" \
    && pip install -r requirements.txt

COPY --chown=user app.py pyproject.toml ./
COPY --chown=user cbam_viz ./cbam_viz
COPY --chown=user weights ./weights
USER user

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py"]
