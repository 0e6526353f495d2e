# Parcours with its own Chromium (Debian's), for the agent, the collector or both.
# Build: docker build -t parcours .    Run: docker run -p 9480:9480 parcours run --listen 0.0.0.0:9480
FROM python:3.11-slim-bookworm

# The same commands as "Installing by hand" in the README.
RUN apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation && rm -rf /var/lib/apt/lists/*
ENV PARCOURS_CHROMIUM=/usr/bin/chromium

WORKDIR /opt/parcours
COPY pyproject.toml README.md ./
COPY probes probes
COPY collector collector
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 parcours && mkdir -p /keys && chown parcours /keys
USER parcours
EXPOSE 9480 8081
ENTRYPOINT ["parcours"]
CMD ["run", "--listen", "0.0.0.0:9480"]
