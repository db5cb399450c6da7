from pathlib import Path

import pytest

from studio.core.errors import StudioError
from studio.core.recipe import builtin_recipes, load_recipe_file, parse_recipe, resolve_recipe


def test_builtin_recipes_load_and_have_unique_names() -> None:
    names = [r.name for r in builtin_recipes()]
    assert len(names) == len(set(names))
    recipes = builtin_recipes("text-classification")
    # Every CPU backend of the core is covered by a built-in recipe.
    assert {r.backend for r in recipes if r.device == "cpu"} == {
        "torch-fp32",
        "torch-int8-dynamic",
        "ort-fp32",
        "ort-int8-dynamic",
        "ort-int8-static",
        "ort-int4",
        "ort-fp16",
    }
    methods = {r.calibration.method for r in recipes if r.calibration and r.device == "cpu"}
    assert methods == {"minmax", "entropy", "percentile"}


def test_language_model_recipes_cover_the_issue_list() -> None:
    recipes = builtin_recipes("text-generation")
    assert all(r.name.startswith("llm-") and r.tasks == ("text-generation",) for r in recipes)
    assert {(r.backend, r.precision, r.mode) for r in recipes if r.device == "cpu"} == {
        ("torch-fp32", "fp32", "none"),
        ("torch-bf16", "bf16", "none"),
        ("torch-int8-weight-only", "int8", "weight-only"),
        ("torch-int8-dynamic", "int8", "dynamic"),
        ("ort-fp32", "fp32", "none"),
        ("ort-int4", "int4", "weight-only"),
        ("ort-int8-dynamic", "int8", "dynamic"),
        ("ort-genai-int4", "int4", "weight-only"),
    }
    gpu = {(r.backend, r.precision) for r in recipes if r.device == "cuda"}
    assert gpu == {
        ("torch-cuda", "fp16"),
        ("torch-cuda", "bf16"),
        ("bitsandbytes", "int8"),
        ("bitsandbytes", "int4"),
        ("ort-int4", "int4"),
    }
    int4 = resolve_recipe("llm-ort-int4")
    assert int4.accuracy_level == 4 and int4.block_size == 32 and not int4.quantize_lm_head
    nf4 = resolve_recipe("llm-bnb-nf4")
    assert nf4.double_quant and nf4.compute_dtype == "bf16"
    assert not set(builtin_recipes("text-classification")) & set(recipes)


def test_a_recipe_for_a_kind_its_backend_cannot_run_is_refused() -> None:
    with pytest.raises(
        StudioError, match="handles text-classification, feature-extraction, not text-generation"
    ):
        parse_recipe(
            {
                "name": "x",
                "backend": "ort-int8-static",
                "precision": "int8",
                "mode": "static",
                "calibration": {"method": "minmax"},
                "tasks": ["text-generation"],
            }
        )


def test_recipe_round_trips_through_toml(tmp_path: Path) -> None:
    recipe = resolve_recipe("ort-int8-static-entropy")
    path = tmp_path / "copy.toml"
    path.write_text(recipe.to_toml())
    assert load_recipe_file(path) == recipe


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"precision": "int3"},
            "field 'precision' has invalid value 'int3': allowed: fp32, fp16, bf16, int8, int4, fp8, fp4",
        ),
        (
            {"mode": "fast"},
            "field 'mode' has invalid value 'fast': allowed: none, dynamic, static, weight-only",
        ),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"threads": -1}, "field 'threads' has invalid value -1"),
        ({"backend": "nope"}, "field 'backend': unknown backend 'nope'; allowed:"),
        (
            {"precision": "int4"},
            "field 'precision': backend 'ort-int8-dynamic' does not do precision 'int4'; allowed: int8",
        ),
        (
            {"calibration": {"method": "kl"}},
            "field 'calibration.method' has invalid value 'kl': allowed: minmax, entropy, percentile",
        ),
        ({"block_size": 48}, "field 'block_size': 48 is not a power of two"),
    ],
)
def test_invalid_recipe_names_the_field_and_allowed_values(data: dict, expected: str) -> None:
    base = {"name": "x", "backend": "ort-int8-dynamic", "precision": "int8", "mode": "dynamic"}
    with pytest.raises(StudioError) as info:
        parse_recipe({**base, **data}, "x.toml")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_static_recipe_without_calibration_is_refused() -> None:
    with pytest.raises(StudioError, match="static mode needs a \\[calibration\\] table"):
        parse_recipe({"name": "s", "backend": "ort-int8-static", "precision": "int8", "mode": "static"})


def test_missing_field_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="field 'backend' is missing"):
        parse_recipe({"name": "x", "precision": "fp32"})
    bad = tmp_path / "bad.toml"
    bad.write_text("backend = \n")
    with pytest.raises(StudioError, match="not valid TOML"):
        load_recipe_file(bad)
    with pytest.raises(StudioError, match="no recipe named 'nope'"):
        resolve_recipe("nope")


def test_cache_key_fields_ignore_runtime_settings() -> None:
    recipe = resolve_recipe("ort-int8-dynamic")
    assert (
        recipe.model_copy(update={"threads": 7, "batch_size": 32}).artifact_fields()
        == recipe.artifact_fields()
    )
    assert recipe.model_copy(update={"per_channel": False}).artifact_fields() != recipe.artifact_fields()
