"The write-up: every page _quarto.yml names exists, and the executed notebooks render with nbconvert."
import re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


def quarto_pages():
    text = (ROOT/'_quarto.yml').read_text()
    return sorted(set(re.findall(r'href:\s*(\S+)', text)))


def test_quarto_pages_exist():
    pages = quarto_pages()
    assert pages, '_quarto.yml names no pages'
    missing = [p for p in pages if not (ROOT/p).is_file()]
    assert not missing, f'_quarto.yml names missing files: {missing}'


@pytest.mark.parametrize('page', [p for p in quarto_pages() if p.endswith('.ipynb')])
def test_executed_notebook_renders_with_nbconvert(page, tmp_path):
    nbconvert = pytest.importorskip('nbconvert')
    import nbformat
    nb = nbformat.read(ROOT/page, as_version=4)
    assert any(c.get('outputs') for c in nb.cells if c.cell_type == 'code'), f'{page} was not executed'
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert 'metric' in html and '<img' in html
