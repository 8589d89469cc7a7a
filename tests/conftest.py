"Shared test helpers."
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(name, tmp_path, **params):
    "Execute nbs/<name> with papermill into tmp_path, writing its outputs under tmp_path/outputs."
    papermill = pytest.importorskip('papermill')
    out = tmp_path/'executed.ipynb'
    papermill.execute_notebook(str(ROOT/'nbs'/name), str(out), parameters=dict(out_root=str(tmp_path/'outputs'), **params),
                               kernel_name='python3', progress_bar=False, cwd=str(ROOT))
    return out
