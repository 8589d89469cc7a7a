"Shared test helpers."
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(name, tmp_path, out_root=True, **params):
    "Execute nbs/<name> with papermill into tmp_path, writing its outputs under tmp_path/outputs (`out_root=False`: a notebook without that parameter)."
    papermill = pytest.importorskip('papermill')
    out = tmp_path/'executed.ipynb'
    if out_root: params = dict(out_root=str(tmp_path/'outputs'), **params)
    papermill.execute_notebook(str(ROOT/'nbs'/name), str(out), parameters=params,
                               kernel_name='python3', progress_bar=False, cwd=str(ROOT))
    return out
