"Integration tests of tisr.report: nose summary -> source 1's table and markdown, curves from a step log, the perception-distortion plot."
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from tisr.eval import summarise
from tisr.eval import (method_order, summarise_nose, method_table, markdown_table, method_markdown, plot_curves,
                         plot_perception_distortion, NOSE_METRICS)


def _per_image(seed=0):
    "Per-image rows like Finetune's per_image.csv plus nose rows with failures: 2 datasets x 3 methods x 5 images."
    rng = np.random.default_rng(seed)
    rows = []
    for ds, base in (('faces', 30.), ('scenes', 27.)):
        for method, gain, lp, nose in (('bicubic', 0., .3, 4.), ('zero-shot', 2., .1, 2.), ('v2', 3., .05, 1.)):
            for i in range(5):
                img = f'{ds}{i}.png'
                rows += [dict(image=img, dataset=ds, method=method, metric='psnr', value=base + gain + rng.normal(0, .1)),
                         dict(image=img, dataset=ds, method=method, metric='ssim', value=.9),
                         dict(image=img, dataset=ds, method=method, metric='LPIPS-alex-v0.1', value=lp)]
                failed = method == 'bicubic' and i == 0
                rows.append(dict(image=img, dataset=ds, method=method, metric='nose', failed=failed,
                                 value=np.nan if failed else nose * (i + 1)))
    return pd.DataFrame(rows).assign(split='test')


def _metrics(tmp_path):
    "The tidy metrics frame as the lead builds it, written to and read back from CSV."
    pi = _per_image()
    m = pd.concat([summarise(pi[pi.metric != 'nose'], 'test'), summarise_nose(pi, 'test')], ignore_index=True)
    m = m.assign(recipe='v2', manifest_hash='abc123', conventions='uint8-rounded')
    m.to_csv(tmp_path/'metrics.csv', index=False)
    return pd.read_csv(tmp_path/'metrics.csv')


def test_summarise_nose_counts_failures_and_pools_all():
    s = summarise_nose(_per_image(), 'test').set_index(['dataset', 'method', 'metric'])
    assert s.loc[('faces', 'bicubic', 'nose_fail'), 'value'] == 1 and s.loc[('faces', 'bicubic', 'nose_fail'), 'n'] == 5
    assert s.loc[('faces', 'bicubic', 'nose_median'), 'value'] == pytest.approx(4. * 3.5)   # images 2..5 scored
    assert s.loc[('faces', 'v2', 'nose_mean'), 'value'] == pytest.approx(3.)
    assert s.loc[('all', 'bicubic', 'nose_fail'), 'value'] == 2 and s.loc[('all', 'v2', 'nose_median'), 'n'] == 10
    assert set(s.index.get_level_values('metric')) == set(NOSE_METRICS)


def test_source1_table_from_csv(tmp_path):
    t = method_table(_metrics(tmp_path))
    assert list(t.columns) == ['dataset', 'method', 'PSNR', 'SSIM', 'LPIPS-alex-v0.1', 'nose median (px)',
                               'nose mean (px)', 'nose fail', 'n']
    assert list(t.dataset) == ['all'] * 3 + ['faces'] * 3 + ['scenes'] * 3
    assert list(t.method) == ['bicubic', 'zero-shot', 'v2'] * 3
    assert list(t.n) == [10] * 3 + [5] * 6
    assert list(t['nose fail']) == [2, 0, 0, 1, 0, 0, 1, 0, 0]
    v2 = t[(t.dataset == 'faces') & (t.method == 'v2')].iloc[0]
    assert v2['PSNR'] == pytest.approx(33., abs=.2) and v2['nose median (px)'] == pytest.approx(3.)
    with pytest.raises(ValueError, match="splits present"): method_table(_metrics(tmp_path), 'val')


def test_markdown_rendering(tmp_path):
    md = method_markdown(_metrics(tmp_path))
    lines = md.splitlines()
    assert lines[0].startswith('| dataset | method | PSNR ↑ | SSIM ↑ | LPIPS-alex-v0.1 ↓ | nose median (px) ↓')
    assert len([l for l in lines if l.startswith('| ')]) == 1 + 9
    assert '| faces | v2 | 3' in md and 'manifest_hash: abc123' in lines[-1] and 'conventions: uint8-rounded' in lines[-1]
    assert markdown_table(pd.DataFrame({'x': [np.nan], 'n': pd.array([None], 'Int64')}), arrows=False).splitlines()[2] == '| n/a | n/a |'


def test_method_order_puts_recipes_in_number_order():
    assert method_order(['edsr', 'v12', 'v3', 'bicubic', 'scratch-init', 'v3+x8']) == \
        ['bicubic', 'scratch-init', 'v3', 'v3+x8', 'v12', 'edsr']


def test_plot_curves_from_step_log(tmp_path):
    log = pd.DataFrame({'epoch': [0, 1, 1, 2], 'step': [0, 25, 40, 80], 'lr': [np.nan, 1e-5, 1e-5, 5e-6],
                        'faces/x/psnr': [30., 31., np.nan, 32.], 'scenes/psnr': [27., np.nan, 28., 28.5]})
    log.to_csv(tmp_path/'log.csv', index=False)
    fig = plot_curves(pd.read_csv(tmp_path/'log.csv'), tmp_path/'curves.png', baseline='zero-shot')
    ax = fig.axes[0]
    assert (tmp_path/'curves.png').stat().st_size > 1000 and ax.get_xlabel() == 'step'
    assert [l.get_label() for l in ax.lines] == ['faces/x', 'faces/x zero-shot', 'scenes', 'scenes zero-shot']
    assert list(ax.lines[0].get_xdata()) == [25, 80] and list(ax.lines[3].get_ydata()) == [27., 27.]
    assert list(plot_curves(log, x='epoch').axes[0].lines[0].get_xdata()) == [1, 2]
    plt.close('all')


def test_perception_distortion_plot(tmp_path):
    m = _metrics(tmp_path)
    fig = plot_perception_distortion(m, tmp_path/'pd.png')
    ax = fig.axes[0]
    assert (tmp_path/'pd.png').stat().st_size > 1000
    assert len(ax.collections) == 9 and sorted(t.get_text() for t in ax.texts) == sorted(['bicubic', 'zero-shot', 'v2'] * 3)
    v2_faces = [c.get_offsets()[0] for c in ax.collections if c.get_offsets()[0][1] == pytest.approx(.05)]
    assert len(v2_faces) == 3 and max(p[0] for p in v2_faces) == pytest.approx(33., abs=.2)
    assert 'LPIPS-alex-v0.1' in ax.get_ylabel() and 'PSNR' in ax.get_xlabel()
    with pytest.raises(ValueError, match='no LPIPS-family metric'):
        plot_perception_distortion(m[~m.metric.str.contains('LPIPS')])
    plt.close('all')
