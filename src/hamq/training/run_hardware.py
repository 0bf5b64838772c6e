"""One hardware truth per run: the crossbar a run was trained for, as it recorded it.

``run.json`` records the *resolved* hardware description (every field of the preset after
the config's ``hardware.representation`` / ``hardware.cell_bits`` overrides). ``hamq eval``,
``hamq energy`` and sweeps use it unless told otherwise; ``--hw`` (a preset or a YAML file)
and dotted ``--set section.field=value`` override it, and the output says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hamq.errors import HamqError
from hamq.hardware.spec import HardwareSpec, hardware_from_dict, load_hardware, override_hardware
from hamq.training.config import TrainConfig


@dataclass(frozen=True)
class ResolvedHardware:
    """The hardware a command uses, and a one-line account of where it came from."""

    spec: HardwareSpec
    source: str
    overridden: bool


def recorded_hardware(record: dict[str, Any], config: TrainConfig, where: str) -> ResolvedHardware:
    """The hardware recorded in a run's ``run.json`` (older runs: resolved from its config)."""
    from hamq.training.trainer import hardware_of

    hw = record.get("hardware")
    if isinstance(hw, dict) and "spec" in hw:
        spec = hardware_from_dict(hw["spec"], f"recorded in '{where}'")
        return ResolvedHardware(spec, f"{spec.name} as recorded in {where}", False)
    spec = hardware_of(config)
    return ResolvedHardware(
        spec, f"{spec.name} from the run's config (its run.json predates recorded hardware)", False
    )


def resolve_hardware(
    record: dict[str, Any],
    config: TrainConfig,
    where: str,
    hw: str | None = None,
    sets: list[str] | None = None,
) -> ResolvedHardware:
    """The run's recorded hardware, or ``hw`` (preset name or YAML file) instead, with
    ``sets`` (dotted field overrides) applied to whichever is used."""
    sets = list(sets or [])
    if hw is None:
        base = recorded_hardware(record, config, where)
    else:
        spec = load_hardware(hw)
        run_name = (record.get("hardware") or {}).get("name", "?")
        how = f"{spec.name} from --hw (overrides the run's {run_name})"
        base = ResolvedHardware(spec, how, True)
    if not sets:
        return base
    try:
        spec = override_hardware(base.spec, sets, f"{base.spec.name} with --set")
    except HamqError as err:
        raise HamqError(f"{err} (hardware --set {' '.join(sets)})") from None
    return ResolvedHardware(spec, f"{base.source}, with --set {' '.join(sets)}", True)


def hardware_record(hw: HardwareSpec) -> dict[str, Any]:
    """``run.json``'s ``hardware``: the headline fields and the whole resolved description."""
    return {
        "name": hw.name,
        "representation": hw.representation,
        "cell_bits": hw.cell_bits,
        "spec": hw.model_dump(mode="json"),
    }
