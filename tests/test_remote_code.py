"""Custom code a config declares (``auto_map``, ``custom_pipelines``): reported, gated, never run.

The configs carry the ``auto_map`` literals of real repos that ship their own modelling code
(DeepSeek-V3, ChatGLM3, Phi-3's first revisions and a fine-tune pointing at them,
InternLM2.5); every ``.py`` file written here would leave a marker file if it were ever
imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from helpers import cli, cli_json
from hub_emulator import HubEmulator
from layouts import make_checkpoint
from paramtool.analysis.remote_code import find_remote_code, parse_reference

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"

DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "auto_map": {
        "AutoConfig": "configuration_deepseek.DeepseekV3Config",
        "AutoModel": "modeling_deepseek.DeepseekV3Model",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM",
    },
}
CHATGLM3 = {
    "architectures": ["ChatGLMModel"],
    "model_type": "chatglm",
    "auto_map": {
        "AutoConfig": "configuration_chatglm.ChatGLMConfig",
        "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
        "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
        "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
        "AutoModelForSequenceClassification": "modeling_chatglm.ChatGLMForSequenceClassification",
    },
}
PHI3_EARLY = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "auto_map": {
        "AutoConfig": "configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
    },
}
PHI3_FINETUNE = {  # a fine-tune that takes Phi-3's code from Microsoft's repo
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "auto_map": {
        "AutoConfig": "microsoft/Phi-3-mini-4k-instruct--configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "microsoft/Phi-3-mini-4k-instruct--modeling_phi3.Phi3ForCausalLM",
    },
}
INTERNLM2_5 = {
    "architectures": ["InternLM2ForCausalLM"],
    "model_type": "internlm2",
    "auto_map": {
        "AutoConfig": "configuration_internlm2.InternLM2Config",
        "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
        "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
    },
}
PLAIN = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
TENSORS: dict[str, tuple[str, tuple[int, ...]]] = {
    "model.embed_tokens.weight": ("BF16", (16, 8)),
    "model.norm.weight": ("F32", (8,)),
}


def write_repo(folder: Path, config: dict[str, Any], code: tuple[str, ...] = ()) -> Path:
    """A one-file checkpoint with ``config`` and Python files that leave a marker if imported."""
    folder.mkdir(parents=True, exist_ok=True)
    make_checkpoint(folder, TENSORS)
    (folder / "config.json").write_text(json.dumps(config))
    marker = folder.parent / f"{folder.name}.IMPORTED"
    for name in code:
        (folder / name).write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    return folder


def never_imported(folder: Path) -> None:
    assert not (folder.parent / f"{folder.name}.IMPORTED").exists()


def validate(command: str, doc: Any) -> None:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text(encoding="utf-8"))
    problems = [e.message for e in Draft202012Validator(schema).iter_errors(doc)]
    assert not problems, problems


# ------------------------------------------------------------------ the record


@pytest.mark.parametrize(
    ("reference", "repo", "module", "cls"),
    [
        (
            "modeling_deepseek.DeepseekV3ForCausalLM",
            None,
            "modeling_deepseek",
            "DeepseekV3ForCausalLM",
        ),
        (
            "microsoft/Phi-3-mini-4k-instruct--modeling_phi3.Phi3ForCausalLM",
            "microsoft/Phi-3-mini-4k-instruct",
            "modeling_phi3",
            "Phi3ForCausalLM",
        ),
        ("modeling", None, None, None),  # no class
        ("a.b.C", None, None, None),  # transformers splits on exactly one dot
        ("x--y--m.C", None, None, None),
        ("../../etc/passwd.C", None, None, None),
    ],
)
def test_references_split_as_transformers_splits_them(reference, repo, module, cls):
    r = parse_reference("auto_map", "AutoModel", reference)
    assert (r.repo, r.module, r.class_name) == (repo, module, cls)
    assert r.reference == reference
    assert r.file == (None if module is None else module + ".py")


def test_deepseek_v3_with_its_files():
    rc = find_remote_code(DEEPSEEK_V3, ("configuration_deepseek.py", "modeling_deepseek.py"))
    assert rc is not None
    assert [(r.key, r.reference) for r in rc.declared] == list(DEEPSEEK_V3["auto_map"].items())
    assert rc.modules == ("configuration_deepseek.py", "modeling_deepseek.py")
    assert rc.present == rc.modules and rc.missing == () and rc.other_repos == ()


def test_chatglm3_without_its_files_names_the_missing_modules():
    rc = find_remote_code(CHATGLM3, ())
    assert rc is not None and len(rc.declared) == 5
    assert rc.modules == ("configuration_chatglm.py", "modeling_chatglm.py")
    assert rc.present == () and rc.missing == rc.modules


def test_an_unlisted_folder_leaves_present_and_missing_unknown():
    rc = find_remote_code(INTERNLM2_5, None)
    assert rc is not None and rc.present is None and rc.missing is None and rc.code_files is None
    assert rc.modules == ("configuration_internlm2.py", "modeling_internlm2.py")


def test_references_into_another_repo():
    rc = find_remote_code(PHI3_FINETUNE, ())
    assert rc is not None and rc.modules == () and rc.missing == ()
    assert rc.other_repos == ("microsoft/Phi-3-mini-4k-instruct",)
    assert {r.file for r in rc.declared} == {"configuration_phi3.py", "modeling_phi3.py"}


def test_tokenizer_pairs_and_custom_pipelines():
    config = {
        "auto_map": {
            "AutoConfig": "configuration_chatglm.ChatGLMConfig",
            "AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None],
        },
        "custom_pipelines": {
            "pair-classification": {
                "impl": "pair_classification.PairClassificationPipeline",
                "pt": ["AutoModelForSequenceClassification"],
                "tf": ["TFAutoModelForSequenceClassification"],
            }
        },
    }
    rc = find_remote_code(config, ("tokenization_chatglm.py",))
    assert rc is not None
    assert [(r.declared_in, r.key, r.reference) for r in rc.declared] == [
        ("auto_map", "AutoConfig", "configuration_chatglm.ChatGLMConfig"),
        ("auto_map", "AutoTokenizer", "tokenization_chatglm.ChatGLMTokenizer"),
        (
            "custom_pipelines",
            "pair-classification",
            "pair_classification.PairClassificationPipeline",
        ),
    ]
    assert rc.missing == ("configuration_chatglm.py", "pair_classification.py")
    assert rc.notes == ()


def test_nothing_declared():
    assert find_remote_code(PLAIN, ()) is None
    assert find_remote_code(None, None) is None
    rc = find_remote_code(PLAIN, ("convert.py",))  # a .py file nothing declares
    assert rc is not None and rc.declared == () and rc.code_files == ("convert.py",)


@pytest.mark.parametrize(
    "config",
    [
        {"auto_map": "modeling_x.X"},
        {"auto_map": {"AutoModel": 7, "AutoConfig": ["a.B", 3]}},
        {"auto_map": {"AutoModel": "nodot"}},
        {"custom_pipelines": ["x"]},
        {"custom_pipelines": {"task": {"pt": []}}},
    ],
)
def test_malformed_declarations_are_notes_never_errors(config):
    rc = find_remote_code(config, ())
    assert rc is not None and rc.notes


def test_a_huge_auto_map_is_listed_in_part():
    rc = find_remote_code({"auto_map": {f"Auto{i}": f"m{i}.C" for i in range(1000)}}, ())
    assert rc is not None and len(rc.declared) == 256
    assert any("1,000 class references" in n for n in rc.notes)


# ------------------------------------------------------------------ inspect


def test_inspect_table_and_json_of_a_folder_with_its_code(tmp_path):
    folder = write_repo(
        tmp_path / "deepseek", DEEPSEEK_V3, ("configuration_deepseek.py", "modeling_deepseek.py")
    )
    r = cli("inspect", str(folder))
    assert r.exit_code == 0, r.stderr
    assert "Custom code" in r.stdout
    assert "AutoModelForCausalLM → modeling_deepseek.DeepseekV3ForCausalLM" in r.stdout
    assert "configuration_deepseek.py, modeling_deepseek.py" in r.stdout
    assert "paramtool never does" in r.stdout and "Missing" not in r.stdout
    doc = cli_json("inspect", str(folder))
    validate("inspect", doc)
    rc = doc["remote_code"]
    assert rc["modules"] == rc["present"] == ["configuration_deepseek.py", "modeling_deepseek.py"]
    assert rc["missing"] == [] and rc["declared"][2] == {
        "declared_in": "auto_map",
        "key": "AutoModelForCausalLM",
        "reference": "modeling_deepseek.DeepseekV3ForCausalLM",
        "repo": None,
        "module": "modeling_deepseek",
        "class": "DeepseekV3ForCausalLM",
        "file": "modeling_deepseek.py",
    }
    never_imported(folder)


def test_inspect_of_a_folder_without_the_code_says_what_is_missing(tmp_path):
    folder = write_repo(tmp_path / "chatglm", CHATGLM3)
    r = cli("inspect", str(folder))
    assert r.exit_code == 0, r.stderr
    assert "Missing" in r.stdout and "modeling_chatglm.py" in r.stdout
    doc = cli_json("inspect", str(folder))
    validate("inspect", doc)
    assert doc["remote_code"]["missing"] == ["configuration_chatglm.py", "modeling_chatglm.py"]


def test_inspect_of_a_plain_checkpoint_has_no_section(tmp_path):
    folder = write_repo(tmp_path / "plain", PLAIN)
    r = cli("inspect", str(folder))
    assert r.exit_code == 0 and "Custom code" not in r.stdout
    doc = cli_json("inspect", str(folder))
    validate("inspect", doc)
    assert doc["remote_code"] is None


def test_hostile_references_are_shown_inert(tmp_path):
    config = {"auto_map": {"AutoModel": "modeling_x.\x1b[2J\u202eEvil", "Auto\x1b]0;t\x07": "m.C"}}
    folder = write_repo(tmp_path / "hostile", config)
    r = cli("inspect", str(folder))
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout and "Custom code" in r.stdout
    doc = cli_json("inspect", str(folder))
    validate("inspect", doc)
    assert doc["remote_code"]["declared"][0]["reference"] == "modeling_x.\x1b[2J\u202eEvil"


# ------------------------------------------------------------------ check


def test_check_no_remote_code_fails_naming_the_classes(tmp_path):
    folder = write_repo(tmp_path / "internlm", INTERNLM2_5, ("configuration_internlm2.py",))
    r = cli("check", str(folder), "--no-remote-code", "--no-config")
    assert r.exit_code == 1, r.stdout
    assert "no_remote_code" in r.stdout and "FAIL" in r.stdout
    flat = " ".join(r.stdout.split())
    assert "modeling_internlm2.InternLM2ForCausalLM" in flat
    doc = cli_json("check", str(folder), "--no-remote-code", "--no-config", code=1)
    validate("check", doc)
    (finding,) = doc["rules"]
    assert finding["name"] == "no_remote_code" and finding["status"] == "fail"
    assert finding["measured"][0] == {
        "declared_in": "auto_map",
        "key": "AutoConfig",
        "reference": "configuration_internlm2.InternLM2Config",
    }
    assert finding["limit"] == []
    assert "modeling_internlm2.py not in the folder" in finding["message"]
    never_imported(folder)


def test_check_no_remote_code_names_other_repos(tmp_path):
    folder = write_repo(tmp_path / "phi3-ft", PHI3_FINETUNE)
    doc = cli_json("check", str(folder), "--no-remote-code", "--no-config", code=1)
    assert "code from microsoft/Phi-3-mini-4k-instruct" in doc["rules"][0]["message"]


def test_check_no_remote_code_passes_a_plain_checkpoint(tmp_path):
    folder = write_repo(tmp_path / "plain", PLAIN, ("convert.py",))
    doc = cli_json("check", str(folder), "--no-remote-code", "--no-config")
    validate("check", doc)
    (finding,) = doc["rules"]
    assert finding["status"] == "pass" and finding["measured"] == []
    assert "convert.py" in finding["message"]
    never_imported(folder)


def test_check_no_remote_code_from_paramtool_toml(tmp_path, monkeypatch):
    folder = write_repo(
        tmp_path / "phi3", PHI3_EARLY, ("configuration_phi3.py", "modeling_phi3.py")
    )
    (tmp_path / "paramtool.toml").write_text("[check]\nno_remote_code = true\n")
    monkeypatch.chdir(tmp_path)
    doc = cli_json("check", str(folder), code=1)
    assert [f["name"] for f in doc["rules"]] == ["no_remote_code"]
    assert "modeling_phi3.py" in doc["rules"][0]["message"]
    never_imported(folder)


# ------------------------------------------------------------------ the Hub


def test_a_hub_repo_lists_its_code_from_the_model_info(hub: HubEmulator, tmp_path):
    folder = write_repo(
        tmp_path / "deepseek", DEEPSEEK_V3, ("configuration_deepseek.py", "modeling_deepseek.py")
    )
    (folder / "modeling_deepseek.py").unlink()  # published without it
    hub.add_repo("deepseek-ai/DeepSeek-V3", folder)
    doc = cli_json("inspect", "deepseek-ai/DeepSeek-V3")
    validate("inspect", doc)
    rc = doc["remote_code"]
    assert rc["code_files"] == ["configuration_deepseek.py"]
    assert rc["missing"] == ["modeling_deepseek.py"]
    check = cli_json("check", "deepseek-ai/DeepSeek-V3", "--no-remote-code", "--no-config", code=1)
    assert check["rules"][0]["status"] == "fail"
    never_imported(folder)
