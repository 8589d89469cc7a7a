"The thermal sensor model and the real-world blur: ranges, determinism, shapes and the statistics they promise."
import numpy as np
import pytest
import torch
from tisr.data import PairedDataset
from tisr.degrade import get_degradation
from tisr.degrade import (thermal_sensor, real_blur, detector, temporal_noise, fixed_pattern_noise, dead_pixels,
                         agc, adc, AGC_MODES, SENSOR_SPECS, SENSOR_DEFAULTS, draw_params, area_downsample)
from tisr.data.synth import render


@pytest.fixture(scope='module')
def hr():
    return render('faces', 1, 2, 3)[:96, :96].copy()


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize('name,value,message', [
    ('netd', 0.0, 'netd must be (0, 1] degC'), ('netd', 1.5, 'netd must be (0, 1] degC'),
    ('column_fpn', -0.1, 'column_fpn must be [0, 1] degC'), ('vignette', 0.95, 'vignette must be [0, 0.9]'),
    ('psf_sigma', (0.1, 4.0), 'psf_sigma must be [0, 3] detector px'), ('agc', 'clahe', "agc must be one of"),
    ('bits', 10, 'bits must be one of 12, 14, 16'), ('n_dead', 1.5, 'n_dead must be an integer'),
    ('span', 0, 'span must be (0, 1000] degC'), ('colour', 1, 'unknown parameter(s) colour'),
])
def test_out_of_range_parameters_name_their_range(hr, name, value, message):
    with pytest.raises(ValueError) as e: thermal_sensor(hr, 4, rng(), **{name: value})
    assert message in str(e.value), str(e.value)


def test_too_many_dead_pixels_and_bad_sizes(hr):
    with pytest.raises(ValueError, match=r'n_dead must be an integer in \[0, 5\]'):
        thermal_sensor(hr, 4, rng(), n_dead=6)          # 24 x 24 detector: at most 1% = 5
    with pytest.raises(ValueError, match='not a multiple of scale 4'): thermal_sensor(hr[:94], 4, rng())
    with pytest.raises(ValueError, match='not a multiple of scale 4'): real_blur(hr[:, :90], 4, rng())
    with pytest.raises(ValueError, match='rotation must be'): real_blur(hr, 4, rng(), rotation=-6)


@pytest.mark.parametrize('name', ['thermal-sensor', 'real-blur'])
@pytest.mark.parametrize('scale', [2, 4])
def test_registered_makers_are_deterministic_and_shaped(hr, name, scale):
    f = get_degradation(name)
    a, p = f(hr, scale, rng(7))
    assert a.shape == (96 // scale, 96 // scale) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    b, q = f(hr, scale, rng(7))
    assert np.array_equal(a, b) and p == q
    assert not np.array_equal(a, f(hr, scale, rng(8))[0])


@pytest.mark.parametrize('name,bad,message', [('thermal-sensor', dict(netd=(0.01, 2.)), 'netd must be (0, 1] degC'),
                                              ('real-blur', dict(grid=1), 'grid must be an integer in [2, 16]')])
def test_check_params_before_any_image(name, bad, message):
    with pytest.raises(ValueError) as e: get_degradation(name).check_params(bad)
    assert message in str(e.value)
    assert get_degradation(name).check_params({}) == {}


def test_paired_dataset_same_index_same_lr(tmp_path, hr):
    from tisr.core import write_image
    from tisr.data import build_manifest
    for i in range(2): write_image(tmp_path/f's{i:03d}_00.png', render('faces', 0, i, 0))
    m = build_manifest([dict(layout='folder', path=str(tmp_path), name='t', subject_re=r'^(s\d+)_')], seed=0,
                       fractions=(0.5, 0.5, 0))
    ds = PairedDataset(m.items, scale=4, patch=32, degradation=dict(name='thermal-sensor', netd=0.1), train=False, seed=3)
    a, b, c = ds[0]['lr'], ds[0]['lr'], ds[1]['lr']
    assert a.shape == (1, 48, 48) and torch.equal(a, b) and not torch.equal(a, c)


def test_params_are_returned_and_reproduce(hr):
    lr, p = thermal_sensor(hr, 4, rng(1))
    assert set(p) == set(SENSOR_SPECS) and isinstance(p['ambient'], float)
    lo, hi = SENSOR_DEFAULTS['netd']
    assert lo <= p['netd'] <= hi
    lr2, p2 = thermal_sensor(hr, 4, rng(1), **{k: v for k, v in p.items()})
    assert p2 == p
    _, pb = real_blur(hr, 4, rng(1))
    assert 0 <= pb['focus_x'] <= 1 and pb['grid'] == 4


@pytest.mark.parametrize('netd', [0.03, 0.1, 0.5])
def test_measured_noise_matches_netd(netd):
    p = draw_params(SENSOR_SPECS, SENSOR_DEFAULTS, rng(), netd=netd, column_fpn=0., row_fpn=0., gain_nu=0.,
                    offset_nu=0., ambient=25.)
    out = detector(np.full((256, 256), 25., np.float32), rng(2), p)
    assert abs(out.std() - netd) < 0.03 * netd


def test_netd_through_the_whole_model():
    "Each column of a ramp is one temperature: its spread, in degC via the AGC's fitted slope, is the NETD."
    span, netd = 2.0, 0.1
    kw = dict(span=span, base=20., psf_sigma=0., defocus_radius=0., motion_length=0., vignette=0., column_fpn=0.,
              row_fpn=0., gain_nu=0., offset_nu=0., n_dead=0, n_stuck=0, netd=netd, agc='linear', agc_clip=0.)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (256, 1))
    lr, _ = thermal_sensor(ramp, 1, rng(4), **kw)
    slope = np.polyfit(20 + span * ramp[0], lr.mean(0), 1)[0]   # display units per degC
    measured = lr.std(0).mean() / slope
    assert abs(measured - netd) < 0.1 * netd, measured


def test_column_fpn_is_column_correlated():
    x = fixed_pattern_noise(np.full((128, 128), 30., np.float32), rng(3), column=0.2)
    x = temporal_noise(x, 0.05, rng(4))
    col_means, row_means = x.mean(0), x.mean(1)
    assert col_means.std() > 10 * row_means.std()
    down = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]      # neighbours in a column share the stripe
    across = np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]
    assert down > 0.8 and abs(across) < 0.1, (down, across)
    r = fixed_pattern_noise(np.full((128, 128), 30., np.float32), rng(3), row=0.2)
    assert r.mean(1).std() > 10 * r.mean(0).std()


@pytest.mark.parametrize('mode', AGC_MODES)
def test_agc_in_unit_range_and_monotone(mode):
    t = 20 + 10 * np.random.default_rng(5).random((64, 64)) ** 3
    c = adc(t, 14)
    out = agc(c, mode)
    assert out.min() >= 0 and out.max() <= 1 and out.max() - out.min() > 0.9
    order = np.argsort(c.ravel(), kind='stable')
    assert np.all(np.diff(out.ravel()[order]) >= 0)
    assert np.all(out.ravel()[order][np.diff(np.r_[c.ravel()[order], np.inf]) == 0] >= 0)


@pytest.mark.parametrize('n_dead,n_stuck', [(0, 0), (5, 0), (3, 4)])
def test_dead_pixel_count(n_dead, n_stuck):
    c, mask = dead_pixels(np.full((40, 50), 8000., np.float32), rng(6), n_dead, n_stuck, full_scale=16383)
    assert (c == 0).sum() == n_dead and (c == 16383).sum() == n_stuck and mask.sum() == n_dead + n_stuck


def test_dead_pixels_in_the_model(hr):
    quiet = dict(netd=1e-3, column_fpn=0., row_fpn=0., gain_nu=0., offset_nu=0., vignette=0.)
    lr, _ = thermal_sensor(hr, 4, rng(9), n_dead=4, n_stuck=0, agc='linear', agc_clip=0., **quiet)
    # dead pixels read 0 counts, so with a min-max AGC they and only they map to exactly 0
    assert (lr == 0).sum() == 4
    lr0, _ = thermal_sensor(hr, 4, rng(9), n_dead=0, n_stuck=0, agc='linear', agc_clip=0., **quiet)
    assert lr0.min() == 0 and not np.array_equal(lr0 == 0, lr == 0)


def test_real_blur_without_blur_is_area(hr):
    none = dict(psf_sigma=0., defocus_centre=0., defocus_edge=0., motion_length=0., rotation=0.)
    lr, _ = real_blur(hr, 4, rng(), **none)
    assert np.abs(lr - area_downsample(hr, 4)).max() < 1e-5
    bars = np.tile((np.arange(96) // 8 % 2).astype(np.float32), (96, 1))   # 2-px LR bars
    sharp, _ = real_blur(bars, 4, rng(), **none)
    blurred, _ = real_blur(bars, 4, rng(), **dict(none, defocus_centre=1.5, defocus_edge=1.5))
    assert blurred.std() < 0.8 * sharp.std(), (blurred.std(), sharp.std())
    moved, _ = real_blur(bars, 4, rng(), **dict(none, motion_length=2., motion_angle=90.))   # along the bars
    assert np.abs(moved - sharp).max() < 1e-4
