# The inferwatch worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY streams ./streams
RUN pip install --no-cache-dir .
ENTRYPOINT ["inferwatch"]
