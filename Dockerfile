# The rollguard image: the worker (`rollguard worker`) and the demo's simulated service
# (`rollguard simulate`). Configured through the same environment variables as everywhere.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rollguard ./rollguard
COPY streams ./streams
COPY detectors ./detectors
COPY actions ./actions
RUN pip install --no-cache-dir ".[worker]"
ENTRYPOINT ["rollguard"]
CMD ["worker"]
