"""From a video file to cached region features `[T, R, D]` (see cache.py for the entry point)."""
