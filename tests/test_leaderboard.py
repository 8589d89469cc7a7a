"The leaderboard over finished runs: comparable groups, flags, baselines once, the eval split apart, and a smoke run of nbs/leaderboard.ipynb on the committed outputs."
import json
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, run_notebook
from tisr.run.leaderboard import find_runs, leaderboard

COLUMNS = ['dataset', 'split', 'method', 'metric', 'value', 'n', 'n_nonfinite', 'n_capped', 'recipe', 'model', 'scale',
           'manifest_hash', 'seed', 'git_commit', 'conventions']
FRAME = (8, 10)   # a tiny LR frame: the cost columns are filled, quickly


def fake_run(d:Path, recipe='v1', hash_='d9d5424c718e67b3', commit='2ca2d43', split='test', psnr=30.0) -> Path:
    "A finished run folder shaped like outputs/finetune/v1-x8-real (config.json + metrics.csv), with made-up scores."
    d.mkdir(parents=True)
    rec = dict(model='cfsr', scale=4, recipe=dict(recipe=recipe, model='cfsr', degradation='area'), quick=False,
               manifest_hash=hash_, git_commit=commit, max_test=None, eval_size=None, timings=dict(train_s=10.0))
    (d/'config.json').write_text(json.dumps(rec))
    rows = [dict(dataset=ds, split=split, method=me, metric=k, value=v, n=4, n_nonfinite=0, n_capped=0, recipe=recipe,
                 model='cfsr', scale=4, manifest_hash=hash_, seed=0, git_commit=commit, conventions='PSNR/SSIM: 1 channel')
            for ds in ('PUJ_T360/registered', 'all') for me, q in (('bicubic', 25.0), ('zero-shot', 28.0), (recipe, psnr))
            for k, v in (('psnr', q), ('ssim', q / 40), ('LPIPS-alex-v0.1', 1 / q))]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(d/'metrics.csv', index=False)
    return d


def test_two_manifest_hashes_make_two_groups_never_one_row(tmp_path):
    a = fake_run(tmp_path/'a', hash_='aaaaaaaa11111111', psnr=30.0)
    b = fake_run(tmp_path/'b', hash_='bbbbbbbb22222222', psnr=31.0)
    t = leaderboard([a, b], frame=FRAME)
    assert sorted(t['comparable_group'].unique()) == ['x4-area-aaaaaaaa', 'x4-area-bbbbbbbb']
    assert not t.duplicated(['comparable_group', 'dataset', 'method']).any()
    # each group has its own bicubic row, from its own run
    bic = t.query("method == 'bicubic' and dataset == 'all'").set_index('comparable_group')['run']
    assert bic.to_dict() == {'x4-area-aaaaaaaa': 'a', 'x4-area-bbbbbbbb': 'b'}


def test_dirty_commit_is_flagged_and_clean_is_not(tmp_path):
    t = leaderboard([fake_run(tmp_path/'a'), fake_run(tmp_path/'b', recipe='v2', commit='87c6268-dirty')], frame=FRAME)
    flags = t.query("dataset == 'all'").set_index('method')['flags']
    assert flags['b'] == 'dirty commit 87c6268-dirty'
    assert flags['a'] == ''


def test_baselines_once_per_group(tmp_path):
    runs = [fake_run(tmp_path/n, recipe=r) for n, r in (('a', 'v1'), ('b', 'v2'), ('c', 'v3'))]
    t = leaderboard(runs, frame=FRAME)
    assert t.groupby(['dataset', 'method']).size().max() == 1
    assert list(t.query("dataset == 'all'")['method']) == ['bicubic', 'zero-shot (cfsr)', 'a', 'b', 'c']


def test_eval_split_is_a_table_of_its_own(tmp_path):
    runs = [fake_run(tmp_path/'a'), fake_run(tmp_path/'e', recipe='v2', split='eval', psnr=35.0)]
    test, evals = leaderboard(runs, 'test', frame=FRAME), leaderboard(runs, 'eval', frame=FRAME)
    assert 'e' not in set(test['method']) and 35.0 not in set(test['PSNR'])
    assert list(evals.query("dataset == 'all'")['method']) == ['bicubic', 'zero-shot (cfsr)', 'e']


def test_unknown_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="root='.*nope' is not a folder"):
        find_runs(tmp_path/'nope')


def test_folders_without_a_record_are_not_runs(tmp_path):
    fake_run(tmp_path/'finetune'/'a')
    (tmp_path/'realiisr'/'x-ablation').mkdir(parents=True)
    (tmp_path/'realiisr'/'x-ablation'/'metrics.csv').write_text('dataset,split\n')
    assert find_runs(tmp_path) == [tmp_path/'finetune'/'a']


def test_notebook_on_the_committed_outputs(tmp_path):
    out = tmp_path/'leaderboard'
    run_notebook('leaderboard.ipynb', tmp_path, out_root=False, root=str(ROOT/'outputs'), out=str(out), frame=[16, 20])
    board = pd.read_csv(out/'leaderboard.csv')
    runs = {p.name for p in find_runs(ROOT/'outputs')}
    # a run name two experiments share (realiisr/real-v1, questions/real-v1) is shown with its experiment folder
    shown = {r.split('/')[-1] for r in board['run']}
    assert runs and runs <= shown
    assert {'questions/real-v1', 'realiisr/real-v1'} <= set(board['run']) or 'real-v1' not in runs
    assert not board.duplicated(['comparable_group', 'dataset', 'method']).any()
    assert (out/'speed.png').is_file() and list(out.glob('pd-*.png'))


def test_notebook_with_no_runs_says_so(tmp_path):
    (tmp_path/'empty').mkdir()
    nb = run_notebook('leaderboard.ipynb', tmp_path, out_root=False, root=str(tmp_path/'empty'), out=str(tmp_path/'lb'))
    assert 'nothing to rank' in nb.read_text()
    assert not (tmp_path/'lb').exists()


def test_notebook_refuses_unknown_parameters(tmp_path):
    with pytest.raises(Exception, match='unknown run parameter'):
        run_notebook('leaderboard.ipynb', tmp_path, root=str(tmp_path))   # out_root is not a leaderboard parameter


def test_notebook_compares_two_real_runs_side_by_side(tmp_path):
    from tisr.run import RunConfig, finetune
    tiny = dict(out_root=str(tmp_path/'outputs'), max_val=2, max_test=2, eval_size=48, quick=True, seed=1,
                knobs=dict(epochs=1, steps_per_epoch=2))
    pair = [str(finetune(RunConfig(recipe=r, run=r, **tiny))[0].dir) for r in ('v1', 'v2')]
    out = tmp_path/'lb'
    run_notebook('leaderboard.ipynb', tmp_path, out_root=False, root=str(tmp_path/'outputs'), out=str(out),
                 frame=[8, 10], compare=pair, per_dataset=1)
    assert (out/'panel.png').is_file() and (out/'curves.png').is_file() and (out/'leaderboard.csv').is_file()
    # a compared folder that is not a finished run is refused before anything is written
    with pytest.raises(Exception, match='not a finished run'):
        run_notebook('leaderboard.ipynb', tmp_path, out_root=False, root=str(tmp_path/'outputs'), out=str(tmp_path/'lb2'),
                     compare=[pair[0], str(tmp_path)])
    assert not (tmp_path/'lb2').exists()
