"The questions experiment notebook end to end (papermill), and its refusals before any run starts."
import json
import pytest
from conftest import run_notebook
from tisr.data.fixtures import write_faces


def test_questions_notebook_smoke(tmp_path):
    "papermill runs nbs/questions.ipynb on the embedded default with a tiny 'other camera' (LPIPS sweep only: no FaceMesh needed)."
    other = write_faces(tmp_path/'other', subjects=range(1, 3), h=64, w=64)
    out = run_notebook('questions.ipynb', tmp_path, other_camera=str(other), lpips_weights=[0.0, 0.2], landmark_weights=[],
                       quick=True, pretrained=False, max_val=1, max_test=2, eval_size=32, nose=False, progress=False,
                       knobs=dict(epochs=2, steps_per_epoch=1, batch_size=2, patch=32, warmup_epochs=0))
    root = tmp_path/'outputs'/'questions'
    assert sorted(p.name for p in root.iterdir() if (p/'metrics.csv').is_file()) == \
        ['curriculum', 'faces-first', 'lpips-0', 'lpips-0.2', 'real-v1', 'synth-pre', 'synth-then-real']
    for f in ('synth-test.md', 'curriculum-test.md', 'sweep-test.md', 'cross_camera-eval.md', 'curves.png'):
        assert (root/'summary'/f).is_file(), f
    assert 'start: synth-pre' in (root/'summary'/'synth-test.md').read_text()
    # the follow-up runs record where they started
    notes = json.loads((root/'curriculum'/'config.json').read_text())['notes']
    assert any('faces-first' in n for n in notes), notes


def test_questions_notebook_refuses_bad_parameters(tmp_path):
    papermill = pytest.importorskip('papermill')
    with pytest.raises(papermill.PapermillExecutionError, match='valid: synth, curriculum, sweep, cross_camera'):
        run_notebook('questions.ipynb', tmp_path, questions=['synth', 'transfer'])
    with pytest.raises(papermill.PapermillExecutionError, match='data'):
        run_notebook('questions.ipynb', tmp_path, data='x')
    assert not (tmp_path/'outputs').exists()
