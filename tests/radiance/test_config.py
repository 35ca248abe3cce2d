"""Radiance settings are checked when the config is built (naming the setting), not deep inside a field or a step."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfseg.config import SettingError, apply_overrides, settings_flag
from nerfseg.errors import InputError
from nerfseg.radiance.config import RadianceConfig, preset
from nerfseg.radiance.field import FieldConfig
from nerfseg.radiance.trainer import RadianceTrainer
from tests.radiance.test_trainer import tiny_config


@pytest.mark.parametrize("changes, message", [
    ({"encoding": "bogus"}, "unknown encoding 'bogus'; expected one of 'hash', 'dense'"),
    ({"grid_kernel": "numba"}, "unknown grid_kernel 'numba'; expected one of 'auto', 'torch'"),
    ({"density_activation": "relu"}, "unknown density_activation 'relu'"),
    ({"sh_degree": 0}, "sh_degree must be in 1..5, got 0"),
    ({"base_resolution": 0}, "base_resolution must be >= 1, got 0"),
])
def test_field_settings_are_checked_when_built(changes: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        FieldConfig(**changes)
    with pytest.raises(SettingError, match=message):  # the same check on the trainer's config (it extends FieldConfig)
        preset("mini").replace(**changes)


def test_errors_name_the_option_inside_settings_flag() -> None:
    with settings_flag("--set"), pytest.raises(SettingError, match=r"^--set downscale=0: downscale must be a positive"):
        apply_overrides(preset("mini"), {"downscale": "0"})


def test_presets_and_stored_configs() -> None:
    assert preset("paper") == RadianceConfig(preset="paper", march_resolution=1024, render_chunk=65536)
    assert preset("mini").field_config().density_bias == -3.0 and FieldConfig().density_bias == 0.0
    with pytest.raises(SettingError, match=r"unknown radiance preset 'midi'; expected one of \['mini', 'paper'\]"):
        preset("midi")
    with pytest.raises(InputError, match="unknown RadianceConfig keys: \\['colour'\\]"):
        RadianceConfig.from_dict({**preset("mini").to_dict(), "colour": 1})
    assert RadianceConfig.from_dict(preset("mini").to_dict()) == preset("mini")


def test_a_patch_larger_than_the_images_is_refused_before_training(tiny_scene: Path) -> None:
    with pytest.raises(SettingError, match=r"patch_size 4096 exceeds the training images"):
        RadianceTrainer(tiny_scene, tiny_config(patch_size=4096), progress=False)
