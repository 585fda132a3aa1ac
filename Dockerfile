# redisops in a container (used by docker-compose.yml's "redisops" service).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY redisops ./redisops
RUN pip install --no-cache-dir . && useradd --create-home ops
USER ops
ENTRYPOINT ["redisops"]
CMD ["--help"]
