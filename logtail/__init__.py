"""Live log tails: the files of LOG_DIR streamed as SSE, one watcher per file per worker.

`directory` (which names lead to a file), `lines` (offsets, lines, tails; no I/O), `events`
(the wire), `watcher` (one greenlet following one file for all its viewers), `tails` (the
worker's watchers), `source` (one viewer's stream, a pipeline Source).
"""
