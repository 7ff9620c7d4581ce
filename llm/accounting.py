"""Where usage goes: Prometheus counters and one JSON line a request in `LOG_DIR/usage.log`.

`llm_tokens_total{key, model, kind, exact}` and `llm_requests_total{key, model, outcome}`: `key`
is the client key's name (`anonymous` without key mode), never the key. Each line is written
with one `write` to a file opened with O_APPEND, so the lines of every worker interleave whole
(a line is far below PIPE_BUF), and the log tail can follow the file live (`/sse/logs/usage.log`).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from streaming.encoding import compact_json

from .usage import MODEL_LABELS, Usage

log = logging.getLogger(__name__)

USAGE_LOG = "usage.log"
OTHER_MODEL = "other"


class UsageRecorder:
    """Records each Usage; shared by a worker's greenlets (nothing here blocks for long)."""

    def __init__(self, registry: CollectorRegistry, log_dir: str) -> None:
        self.tokens = Counter("llm_tokens", "Tokens of relayed chat completions.",
                              ["key", "model", "kind", "exact"], registry=registry)
        self.requests = Counter("llm_requests", "Relayed chat completions by outcome.",
                                ["key", "model", "outcome"], registry=registry)
        self.path = os.path.join(log_dir, USAGE_LOG)
        self._models: set[str] = set()
        self._fd: int | None = None
        self._pid = 0

    def record(self, usage: Usage) -> None:
        model = self._model_label(usage.model)
        exact = "true" if usage.exact else "false"
        self.tokens.labels(usage.key, model, "prompt", exact).inc(usage.prompt_tokens)
        self.tokens.labels(usage.key, model, "completion", exact).inc(usage.completion_tokens)
        self.requests.labels(usage.key, model, usage.outcome).inc()
        self._write(usage)

    def _model_label(self, model: str) -> str:
        if model in self._models:
            return model
        if len(self._models) >= MODEL_LABELS or not model or len(model) > 100:
            return OTHER_MODEL
        self._models.add(model)
        return model

    def _write(self, usage: Usage) -> None:
        line = compact_json({
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "key": usage.key, "model": usage.model, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "exact": usage.exact,
            "duration_s": round(usage.duration, 4),
            "first_chunk_s": None if usage.first_chunk is None else round(usage.first_chunk, 4),
            "outcome": usage.outcome, "status": usage.status}) + "\n"
        try:
            os.write(self._file(), line.encode())
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def _file(self) -> int:
        # Opened in each process after the fork; never shared between processes.
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._pid = os.getpid()
        assert self._fd is not None
        return self._fd
