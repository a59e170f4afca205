# The inferwatch worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY inferwatch ./inferwatch
RUN pip install --no-cache-dir '.[kafka,redis,http]'
# Compile the kernels once, here (numba caches them beside the package): a new container starts warm
RUN python -c "from inferwatch.testing.synthetic import generate, to_lines; \
open('/tmp/warm.jsonl', 'wb').write(b'\n'.join(to_lines(generate(12000, seed=1))) + b'\n')" \
 && inferwatch replay --file /tmp/warm.jsonl > /dev/null && rm /tmp/warm.jsonl
ENTRYPOINT ["inferwatch"]
