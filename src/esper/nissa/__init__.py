"""Telemetry: typed events through one hub to sinks, at a chosen level, plus run directories.

Every run writes `runs/<date>-<name>/events.jsonl` (one `Event.to_dict()` per line, the contract
that `karn` reads), its `config.json` and `checkpoints/`. Levels `off|minimal|normal|debug` only
change what is written, never what training does; a failing sink is reported once and dropped,
never allowed to stop training. Atomic writes (temp file + fsync + rename) live here too, for
checkpoints and run records. Uses only `esper.leyline`; no torch.
"""

from esper.nissa.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from esper.nissa.hub import TelemetryHub
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
    create_run_dir,
    read_events,
    write_config,
)
from esper.nissa.sinks import JsonlSink, MemorySink, Sink

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "DEFAULT_EVENT_LEVEL",
    "EVENTS_FILE",
    "EVENT_LEVELS",
    "JsonlSink",
    "MemorySink",
    "Sink",
    "TelemetryHub",
    "TelemetryLevel",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "create_run_dir",
    "event_level",
    "is_written",
    "parse_level",
    "read_events",
    "write_config",
]
