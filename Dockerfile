# The inferwatch worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY inferwatch ./inferwatch
RUN pip install --no-cache-dir '.[kafka,redis,http]'
ENTRYPOINT ["inferwatch"]
