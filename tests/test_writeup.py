"""The write-up: every page _quarto.yml names exists, the post is up to date with the executed notebooks it embeds,
and the post and the experiment notebooks render with nbconvert (Quarto is not installable on CI)."""
import re
from pathlib import Path
import pytest
from tisr.writeup import build_post, EMBED

ROOT = Path(__file__).resolve().parent.parent
POST_SRC, POST = ROOT/'outputs/writeup/post.md', ROOT/'outputs/writeup/post.ipynb'
nbformat = pytest.importorskip('nbformat')


def quarto_pages():
    text = (ROOT/'_quarto.yml').read_text()
    return sorted(set(re.findall(r'href:\s*(\S+)', text)))


def test_quarto_pages_exist():
    pages = quarto_pages()
    assert 'outputs/writeup/post.ipynb' in pages
    missing = [p for p in pages if not (ROOT/p).is_file()]
    assert not missing, f'_quarto.yml names missing files: {missing}'


def test_post_is_assembled_from_the_committed_runs(tmp_path):
    embeds = EMBED.findall(POST_SRC.read_text())
    assert len(embeds) >= 8 and {nb.split('/')[1] for nb, _ in embeds} >= {'finetune', 'delta', 'srresnet'}
    fresh = nbformat.read(str(build_post(POST_SRC, tmp_path/'post.ipynb', root=ROOT)), as_version=4)
    committed = nbformat.read(str(POST), as_version=4)
    assert fresh == committed, 'outputs/writeup/post.ipynb is stale: run python -m tisr.writeup'


@pytest.mark.parametrize('page', [p for p in quarto_pages() if p.endswith('.ipynb')])
def test_notebook_renders_with_nbconvert(page):
    nbconvert = pytest.importorskip('nbconvert')
    nb = nbformat.read(ROOT/page, as_version=4)
    assert any(c.get('outputs') for c in nb.cells if c.cell_type == 'code'), f'{page} was not executed'
    exporter = nbconvert.HTMLExporter(exclude_input=page.endswith('post.ipynb'))
    html, _ = exporter.from_notebook_node(nb)
    assert '<table' in html and '<img' in html and 'PSNR' in html
