"The embedded default dataset: deterministic, subject-named, reusable, never overwriting user files."
import json
import numpy as np
import pytest
from tisr.data.synth import render, make_synth_dataset, ensure_default_dataset, SYNTH_SUBJECT_RE
from tisr.data import build_manifest


def test_render_is_deterministic_and_seed_dependent():
    a = render('scenes', 5, 2, 3)
    assert np.array_equal(a, render('scenes', 5, 2, 3))
    assert not np.array_equal(a, render('scenes', 6, 2, 3))
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1 and a.std() > 0.05


def test_dataset_splits_by_subject(tmp_path):
    root = make_synth_dataset(tmp_path/'s', n_subjects=6, per_subject=3, kinds=('faces',))
    m = build_manifest([dict(layout='folder', path=str(root/'faces'), name='f', subject_re=SYNTH_SUBJECT_RE)], seed=0)
    subj = {s: {it.subject for it in m.split(s)} for s in ('train', 'val', 'test')}
    assert all(subj.values()), subj
    assert not (subj['train'] & subj['val'] or subj['train'] & subj['test'] or subj['val'] & subj['test'])
    assert {it.subject for it in m.items} == {f's{i:03d}' for i in range(6)}


def test_reuse_and_refusal(tmp_path):
    root = make_synth_dataset(tmp_path/'s', n_subjects=2, per_subject=1)
    before = (root/'faces'/'s000_00.png').stat().st_mtime_ns
    make_synth_dataset(tmp_path/'s', n_subjects=2, per_subject=1)
    assert (root/'faces'/'s000_00.png').stat().st_mtime_ns == before
    assert json.loads((root/'synth.json').read_text())['complete']
    with pytest.raises(FileExistsError, match='other parameters'):
        make_synth_dataset(tmp_path/'s', n_subjects=3, per_subject=1)
    (tmp_path/'user').mkdir(); (tmp_path/'user'/'a.png').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='refusing'):
        make_synth_dataset(tmp_path/'user')
    assert (tmp_path/'user'/'a.png').read_bytes() == b'x'


def test_default_dataset_lives_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TISR_CACHE', str(tmp_path))
    d = ensure_default_dataset()
    assert set(d) == {'synth-faces', 'synth-scenes'}
    assert all(str(p).startswith(str(tmp_path)) and len(list(p.glob('s*_*.png'))) == 24 * 8 for p in d.values())
