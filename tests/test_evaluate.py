"Integration tests of tisr.evaluate's nose-tip error (source 1's downstream metric): stand-in and real landmarker."
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import cv2
import tisr.models.hub
from tisr.core import env_dir, read_image
from tisr.models.hub import WeightsNotFound
from tisr.landmarks import FaceLandmarker, NOSE_TIP
from tisr.models import build_model
from tisr.eval import nose_metrics, evaluate, evaluate_models, NOSE_COLUMNS

PUJ = 'thermal/faces_lwir/PUJ_T360/registered'


class BlobLandmarker:
    "Stand-in: one 'face' at the brightest pixel when it is above 0.5; its nose tip is the brightest pixel."
    def detect(self, img):
        g = img[..., 0]
        y, x = np.unravel_index(g.argmax(), g.shape)
        return [(x, y)] if g.max() > .5 else []
    def landmarks(self, img, face):
        g = img[..., 0]
        y, x = np.unravel_index(g.argmax(), g.shape)
        pts = np.zeros((468, 3)); pts[NOSE_TIP, :2] = x, y
        return pts


def _toy_set():
    "Three LR images with a bright 'nose' (the last has none); HR = nearest x2, the second HR shifted 6 px down."
    lrs = [torch.full((1, 8, 8), .3) for _ in range(3)]
    lrs[0][0, 3, 2] = lrs[1][0, 1, 5] = 1.
    up = nn.Upsample(scale_factor=2, mode='nearest')
    items = [dict(lr=l, hr=up(l[None])[0], path=f'd/im{k}.png', dataset='toy') for k, l in enumerate(lrs)]
    items[1]['hr'] = items[1]['hr'].roll(6, -2)
    return items, up


def test_nose_metrics_counts_failures():
    a = np.zeros((16, 16), np.float32); a[4, 5] = 1
    b = np.zeros((16, 16), np.float32); b[7, 9] = 1
    blank = np.zeros((16, 16), np.float32)
    rows = nose_metrics([a, b, blank, a, blank], [a, a, a, blank, blank], BlobLandmarker())
    assert [r['failure'] for r in rows] == ['', '', 'sr', 'hr', 'hr+sr']
    assert rows[0]['error_px'] == 0 and rows[1]['error_px'] == pytest.approx(5.)
    assert all(np.isnan(r['error_px']) and r['failed'] for r in rows[2:])
    assert nose_metrics(blank, a, BlobLandmarker(), region='hr')[0]['failure'] == ''   # mesh placed in HR's region
    with pytest.raises(ValueError, match="region 'x' is not one of"): nose_metrics(a, a, BlobLandmarker(), region='x')


def test_evaluate_nose_and_models_agree():
    items, up = _toy_set()
    fake = BlobLandmarker()
    df1, _ = evaluate(up, items, 2, landmarker=fake, method='near')
    nf = df1[df1.metric == 'nose'].reset_index(drop=True).astype({'failed': bool})
    assert list(nf.columns) == NOSE_COLUMNS and set(nf.metric) == {'nose'} and set(nf.method) == {'near'}
    assert nf.value[0] == 0 and nf.value[1] == pytest.approx(6.) and np.isnan(nf.value[2])
    assert list(nf.failed) == [False, False, True] and nf.failure[2] == 'hr+sr'
    df = evaluate_models({'near': up}, {'toy': items}, scale=2, landmarker=fake)
    nose = df[df.metric == 'nose'].reset_index(drop=True)
    pd.testing.assert_frame_equal(nose.astype({'failed': bool}), nf)
    assert len(df[df.metric == 'psnr']) == 3 and df.loc[df.metric == 'psnr', 'failed'].isna().all()
    pd.testing.assert_frame_equal(df1.astype({'failed': object}), df.astype({'failed': object}))   # one loop, one answer


def test_missing_landmark_weights_raise_naming_env(tmp_path, monkeypatch):
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path)); monkeypatch.setenv('TISR_CACHE', str(tmp_path))
    def offline(*a, **k): raise OSError('offline')
    monkeypatch.setattr(tisr.models.hub, 'download_file', offline)
    items, up = _toy_set()
    with pytest.raises(WeightsNotFound, match='TISR_WEIGHTS') as e: evaluate(up, items, 2, landmarker=FaceLandmarker())
    assert 'blazeface.pth' in str(e.value) and isinstance(e.value, FileNotFoundError)
    with pytest.raises(WeightsNotFound): evaluate_models({'near': up}, {'toy': items}, 2, landmarker=True)


@pytest.fixture(scope='module')
def faces():
    if env_dir('TISR_WEIGHTS') is None: pytest.skip('set TISR_WEIGHTS to a folder holding landmarks/*.pth')
    data = env_dir('TISR_DATA')
    if data is None or not (data/PUJ).is_dir(): pytest.skip(f'set TISR_DATA to a folder holding {PUJ}')
    return [read_image(p)[0] for p in sorted((data/PUJ).glob('*.png'))[:3]], FaceLandmarker()


def test_real_faces_identity_blur_and_non_face(faces):
    imgs, fl = faces
    assert [r['error_px'] for r in nose_metrics(imgs, imgs, fl)] == [0., 0., 0.]
    errs = {s: np.mean([r['error_px'] for r in nose_metrics([cv2.GaussianBlur(i, (0, 0), s) for i in imgs], imgs, fl)])
            for s in (1, 3)}
    assert 0 < errs[1] < errs[3], errs
    noise = cv2.GaussianBlur(np.random.default_rng(0).random(imgs[0].shape).astype(np.float32), (0, 0), 3)
    rows = nose_metrics([noise, imgs[0]], [imgs[0], noise], fl)
    assert [r['failure'] for r in rows] == ['sr', 'hr'] and all(np.isnan(r['error_px']) for r in rows)


def test_real_faces_bicubic_nose_error(faces):
    imgs, fl = faces
    hrs = [i[:i.shape[0] // 4 * 4, :i.shape[1] // 4 * 4] for i in imgs]
    items = [dict(lr=cv2.resize(h, (h.shape[1] // 4, h.shape[0] // 4), interpolation=cv2.INTER_AREA), hr=h,
                  path=f'face{k}.png', dataset='PUJ') for k, h in enumerate(hrs)]
    df, _ = evaluate(build_model('bicubic', scale=4), items, 4, landmarker=fl, method='bicubic')
    nf = df[df.metric == 'nose'].astype({'failed': bool})
    assert not nf.failed.any()
    assert (nf.value > 0).all() and (nf.value < 20).all(), nf.value.tolist()
