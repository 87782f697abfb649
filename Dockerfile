# bulktag: one image for every role (worker, scheduler, dashboard, emulator, the CLI).
# Credentials are never part of the image: mount a credentials file at run time (the
# compose file does, as a secret) and point BULKTAG_CREDENTIALS_FILE at it.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (tests/test_deployment.py checks that every package listed in
# pyproject.toml is copied): no tests, benchmarks, or local files such as credentials.
COPY pyproject.toml README.md ./
COPY bulktag ./bulktag
COPY producer ./producer
COPY worker ./worker
COPY providers ./providers
COPY emulator ./emulator
COPY dashboard ./dashboard
COPY compliance ./compliance
RUN pip install . && rm -rf /src

# An unprivileged user; its home holds BULKTAG_DATA_DIR (report files, nothing secret).
RUN useradd --create-home --uid 10001 bulktag
USER bulktag
WORKDIR /home/bulktag
ENV BULKTAG_DATA_DIR=/home/bulktag/data \
    BULKTAG_CREDENTIALS_FILE=/run/secrets/bulktag-credentials

ENTRYPOINT ["bulktag"]
# `docker run IMAGE` is a worker; any other subcommand replaces it
# (docker run IMAGE campaigns --redis-url ...).
CMD ["worker"]
