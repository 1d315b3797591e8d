"""``osteo explain``: the trail of one exam, from the published run's own rules."""

import pytest
from conftest import exam, write_scans_csv

from osteo_core.cli import main
from osteo_core.errors import InputError
from osteo_core.outputs.explain import explain
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir


@pytest.fixture()
def published(tmp_path):
    rows = [
        exam(exam_id="E-SMOKER", current_smoker="true", weight_kg="57.5", frax_mof="12", frax_hip="2.99"),
        exam(exam_id="E-OTHER", patient_id="P-OTHER", birth_date="1944-04-04"),
    ]
    scans = write_scans_csv(tmp_path / "scans.csv", rows)
    rules = tmp_path / "local.toml"
    rules.write_text(
        (data_dir() / "rules" / "standard.toml").read_text().replace('version = "1.0.0"', 'version = "7.1"')
    )
    run_screen(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of="2026-01-01", rules=str(rules)))
    return tmp_path / "out", rules


def test_explain_shows_inputs_rules_thresholds_values_and_result(published):
    out, _ = published
    text = explain(out, "E-SMOKER")
    assert "rule set standard@7.1" in text
    assert "lowest T-score -1.8 at total_hip; WHO category osteopenia (normal >= -1.0, osteoporosis <= -2.5" in text
    assert "[ ] frax_hip_ge_3: WHO category in osteopenia and adjusted FRAX hip % >= 3.0; value: 2.99" in text
    assert "[x] osteopenia_with_low_weight: WHO category in osteopenia and weight kg < 57.6; value: 57.5" in text
    assert "[x] osteopenia_with_smoking" in text
    assert "Result: eligible (reasons: osteopenia_with_low_weight, osteopenia_with_smoking)" in text
    assert "Recommendation: oral_bisphosphonate" in text and "Next DXA due: 2026-03-01" in text
    assert "Z category not used (T-score basis)" in text  # before: "Z category unknown" beside a Z-score


def test_explain_prints_no_other_patient_and_no_birth_date(published):
    out, _ = published
    text = explain(out, "E-SMOKER")
    assert "P-OTHER" not in text and "E-OTHER" not in text
    assert "1950-06-15" not in text and "1944-04-04" not in text


def test_explain_uses_the_rules_that_ran(published):
    out, rules = published
    rules.write_text(rules.read_text().replace("threshold = 57.6", "threshold = 50"))
    assert "weight kg < 57.6; value: 57.5" in explain(out, "E-SMOKER")


def test_unknown_exam_is_an_input_error(published, capsys):
    out, _ = published
    with pytest.raises(InputError, match="no valid exam"):
        explain(out, "E-NONE")
    assert main(["explain", "E-NONE", "--out", str(out)]) == 2
    assert "E-NONE" in capsys.readouterr().err


def test_explain_command(published, capsys):
    out, _ = published
    assert main(["explain", "E-OTHER", "--out", str(out)]) == 0
    assert "Exam E-OTHER of 2024-03-01" in capsys.readouterr().out


def test_explain_counts_fractures_from_the_export(tmp_path):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(femoral_neck_t="-2.6")])
    (tmp_path / "fx.csv").write_text("patient_id,fracture_date,icd10\nP1,2023-05-01,S72.001A\n")
    run_screen(
        ScreenRequest(
            scans=[str(scans)], fractures=str(tmp_path / "fx.csv"), out=str(tmp_path / "out"), as_of="2026-01-01"
        )
    )
    text = explain(tmp_path / "out", "E1")
    assert "fractures export: 1 fragility fracture(s) on or before the exam, latest 2023-05-01" in text
    assert "[x] hip_or_vertebral_fracture" in text and "WHO category severe_osteoporosis" in text


def test_explain_shows_both_hips_and_which_one_gave_the_diagnosis(tmp_path):
    hips = {"total_hip_t": None, "femoral_neck_t": None, "left_total_hip_t": "-2.1", "right_total_hip_t": "-2.7"}
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(exam_id="E-HIPS", **hips)])
    run_screen(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of="2026-01-01"))
    text = explain(tmp_path / "out", "E-HIPS")
    assert "lowest T-score -2.7 at total_hip (right hip, the lower of both hips); WHO category osteoporosis" in text
    hips_line = "both hips given (total hip left -2.1 right -2.7, femoral neck left unknown right unknown)"
    assert f"{hips_line}: the lower hip stands for the exam" in text
