"""Command-line flags derived from a config model: one flag per setting, never a second table.

Every field of an `EpisodeSettings` model becomes `--field-name` (help: the field's description
and the value the default preset gives it; choices from its `Literal`/enum type). Values are
passed to pydantic as the text the user typed, so a flag is validated exactly like the same key
in a config file or in `--set KEY=VALUE`. A flag that is not given is absent from the namespace
(`argparse.SUPPRESS`), so presets and files show through. A setting that may be "none" (e.g.
`--target-kl none`) takes that word.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from esper.simic.config import PRESETS, EpisodeSettings, Settings

# The one flag whose name is not its field's: `--envs` reads better than `--n-envs`.
_FLAG_OF = {"n_envs": "--envs"}


def flag_of(field: str) -> str:
    return _FLAG_OF.get(field, "--" + field.replace("_", "-"))


def add_settings_flags(
    parser: argparse.ArgumentParser,
    model: type[EpisodeSettings],
    defaults_from: EpisodeSettings | None = None,
    exclude: tuple[str, ...] = (),
) -> None:
    """One flag per field of `model`, grouped by the class that declares it.

    Args:
        defaults_from: the config whose values the help shows as defaults (the preset a run
            without --preset starts from); None: the model's own defaults.
        exclude: fields that mean nothing to this command (no flag).
    """
    shown = defaults_from if defaults_from is not None else model()
    groups: dict[type, argparse._ArgumentGroup] = {}
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        owner = _declaring_class(model, name)
        if owner not in groups:
            title = (owner.__doc__ or owner.__name__).strip().splitlines()[0].rstrip(".")
            groups[owner] = parser.add_argument_group(title[0].lower() + title[1:])
        _add_flag(groups[owner], name, info, getattr(shown, name))


def given_settings(args: argparse.Namespace, model: type[EpisodeSettings]) -> dict[str, Any]:
    """The settings whose flags were given, as typed ("none" becomes None where allowed)."""
    given = {}
    for name, info in model.model_fields.items():
        if hasattr(args, name):
            value = getattr(args, name)
            if isinstance(value, str) and value.lower() == "none" and _allows_none(info):
                value = None
            given[name] = value
    return given


def _declaring_class(model: type[EpisodeSettings], field: str) -> type:
    for cls in reversed(model.__mro__):
        if field in getattr(cls, "__annotations__", {}):
            return cls
    return model


def _add_flag(group: Any, name: str, info: FieldInfo, default: Any) -> None:
    kind = _base_type(info.annotation)
    help_text = f"{info.description or name} (default: {_show(default)})".replace("%", "%%")
    options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        group.add_argument(flag_of(name), action=argparse.BooleanOptionalAction, **options)
        return
    choices = _choices(kind)
    if choices is not None:
        options["choices"] = [*choices, "none"] if _allows_none(info) else choices
        options["metavar"] = "{" + ",".join(options["choices"]) + "}"
    else:
        options["metavar"] = _metavar(kind, info)
    group.add_argument(flag_of(name), **options)


def _base_type(annotation: Any) -> Any:
    """int | None -> int; tuple[str, ...] -> tuple; Literal[...] stays."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    return get_origin(annotation) if get_origin(annotation) is tuple else annotation


def _allows_none(info: FieldInfo) -> bool:
    return type(None) in get_args(info.annotation)


def _choices(kind: Any) -> list[str] | None:
    if get_origin(kind) is Literal:
        return [str(c) for c in get_args(kind)]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [str(member.value) for member in kind]
    return None


def _metavar(kind: Any, info: FieldInfo) -> str:
    if kind is tuple:
        return "A,B,..."
    if kind is Path:
        return "PATH"
    names = {int: "N", float: "X", str: "TEXT"}
    metavar = names.get(kind, "VALUE")
    return f"{metavar}|none" if _allows_none(info) else metavar


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(str(v.value if isinstance(v, enum.Enum) else v) for v in value)
    return "none" if value is None else str(value)


def typed_pairs(pairs: list[tuple[str, str]], model: type[EpisodeSettings]) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs as settings ("none" becomes None where the setting allows it);
    unknown keys pass through, for the config's validation to name them."""
    settings: dict[str, Any] = {}
    for key, value in pairs:
        info = model.model_fields.get(key)
        is_none = value.lower() == "none" and info is not None and _allows_none(info)
        settings[key] = None if is_none else value
    return settings


def add_source_flags(group: Any, what: str, example: str) -> None:
    """`--preset`, `--config FILE` and `--set KEY=VALUE`: where settings come from.

    Args:
        what: the settings these sources give, for the help ("settings", "episode settings").
        example: a KEY=VALUE for `--set`'s help.
    """
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help=(
            f"starting {what} (default: the preset named after the task,"
            " or after the first of several, e.g. digits)"
        ),
    )
    group.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"JSON or YAML mapping of {what}, applied on top of the preset (default: none)",
    )
    group.add_argument(
        "--set",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"any setting by its config name, e.g. --set {example} (repeatable; default: none)",
    )


def requested_settings(args: argparse.Namespace, model: type[EpisodeSettings]) -> dict[str, Any]:
    """The settings given on the command line: flags and `--set` pairs (not both for one key).

    Raises:
        ValueError: a setting given both by its flag and by `--set`.
    """
    flags = given_settings(args, model)
    pairs = typed_pairs(args.set, model)
    both = sorted(set(flags) & set(pairs))
    if both:
        raise ValueError(
            f"--set {both[0]}=... repeats a setting given by its own flag {flag_of(both[0])}; "
            "use one"
        )
    return {**pairs, **flags}


def resolve_settings(args: argparse.Namespace, model: type[Settings]) -> Settings:
    """The command's config: preset < --config file < flags (see `EpisodeSettings.resolve`)."""
    return model.resolve(args.preset, args.config, requested_settings(args, model))


def key_value(text: str) -> tuple[str, str]:
    """KEY=VALUE for `--set`; the value is validated later, with the whole config."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
