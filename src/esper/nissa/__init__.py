"""Telemetry: typed events through one hub to sinks, at a chosen level, plus run directories.

Every run writes `runs/<date>-<name>/events.jsonl` (one `Event.to_json()` per line, the contract
that `karn` reads), its `config.json` and `checkpoints/`. Levels `off|minimal|normal|debug` only
change what is written, never what training does. A bad payload or a sink bug raises in strict
mode (the default, for tests and library code); in a run (`TelemetryHub(strict=False)`) it costs
only that event or that sink, counted in `TelemetryHub.health()` and reported once, never
stopping training. A sink failing on I/O is retried with backoff in both modes. Atomic writes
(temp file + fsync + rename) live here too, for checkpoints and run records. Uses only
`esper.leyline`; no torch.
"""

from esper.leyline.events import SinkHealth, SinkStatus, TelemetryError, TelemetryHealth
from esper.nissa.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_temp_files,
)
from esper.nissa.hub import STRICT_TELEMETRY_ENV, TelemetryHub
from esper.nissa.levels import (
    DEFAULT_EVENT_LEVEL,
    EVENT_LEVELS,
    TelemetryLevel,
    event_level,
    is_written,
    parse_level,
)
from esper.nissa.run_dir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS_FILE,
    LOCK_FILE,
    RunDirLockedError,
    check_events_length,
    create_run_dir,
    locked_run_dir,
    read_events,
    truncate_events,
    write_config,
)
from esper.nissa.sinks import JsonlSink, MemorySink, Sink

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "DEFAULT_EVENT_LEVEL",
    "EVENTS_FILE",
    "EVENT_LEVELS",
    "LOCK_FILE",
    "STRICT_TELEMETRY_ENV",
    "JsonlSink",
    "MemorySink",
    "RunDirLockedError",
    "Sink",
    "SinkHealth",
    "SinkStatus",
    "TelemetryError",
    "TelemetryHealth",
    "TelemetryHub",
    "TelemetryLevel",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_events_length",
    "create_run_dir",
    "event_level",
    "is_written",
    "locked_run_dir",
    "parse_level",
    "read_events",
    "remove_temp_files",
    "truncate_events",
    "write_config",
]
