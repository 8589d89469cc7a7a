"Integration tests for tisr.landmarks: networks, decoding, face regions, the landmarker on real faces, metric and loss."
import numpy as np
import pytest
import torch
import cv2
from tisr.core import env_dir, read_image
from tisr.landmarks import (BlazeFaceNet, FaceMeshNet, FaceLandmarker, FaceRegion, 
                            decode_boxes, weighted_nms, nose_error, nose_error_summary, square_pad, NOSE_TIP)
from tisr.losses import LOSSES, WeightedLoss, LandmarkConsistencyLoss

PUJ = 'thermal/faces_lwir/PUJ_T360/registered'


def _need_weights():
    if env_dir('TISR_WEIGHTS') is None: pytest.skip('set TISR_WEIGHTS to a folder holding landmarks/*.pth')


def _faces(n):
    _need_weights()
    data = env_dir('TISR_DATA')
    if data is None or not (data/PUJ).is_dir(): pytest.skip(f'set TISR_DATA to a folder holding {PUJ}')
    return [read_image(p)[0] for p in sorted((data/PUJ).glob('*.png'))[:n]]


@pytest.fixture(scope='module')
def landmarker():
    _need_weights()
    return FaceLandmarker()


def test_network_shapes_and_state_dict_layout():
    torch.manual_seed(0)
    boxes, logits = BlazeFaceNet()(torch.rand(2, 3, 128, 128))
    assert boxes.shape == (2, 896, 16) and logits.shape == (2, 896, 1)
    flag, pts = FaceMeshNet()(torch.rand(1, 3, 192, 192))
    assert flag.shape == (1,) and pts.shape == (1, 468, 3) and 0 <= flag.item() <= 1
    keys = FaceMeshNet().state_dict()
    assert 'backbone1.2.act.weight' in keys and 'backbone2a.6.weight' in keys and len(keys) == 113
    assert len(BlazeFaceNet().state_dict()) == 74


def test_decode_and_weighted_nms():
    anchors = torch.tensor([[0.5, 0.5, 1., 1.], [0.5, 0.5, 1., 1.], [0.1, 0.1, 1., 1.]])
    raw = torch.zeros(3, 16); raw[:, 2:4] = 0.2 * 128; raw[1, 0] = 0.02 * 128   # 2nd box shifted right by 0.02
    dets = torch.cat([decode_boxes(raw, anchors), torch.tensor([[0.9], [0.6], [0.8]])], 1)
    out = weighted_nms(dets)
    assert out.shape == (2, 17)
    assert out[0, 16] == pytest.approx(0.75)                      # blended pair: mean score
    assert out[0, 1] == pytest.approx(0.4 + 0.02 * 0.6 / 1.5, abs=1e-6)  # score-weighted xmin
    assert out[1, 1] == pytest.approx(0.0, abs=1e-6)


def test_face_region_crop_maps_back_to_image():
    img = np.zeros((100, 120, 3), np.float32); img[40, 70] = 1.
    region = FaceRegion(65., 45., 40., theta=0.3)
    crop = region.crop(cv2.GaussianBlur(img, (0, 0), 1.), 192)
    qy, qx = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    back = region.crop_to_image(192) @ np.array([qx, qy, 1.])
    assert np.hypot(*(back - [70, 40])) < 0.5


def test_square_pad_keeps_aspect():
    sq, side, (top, left) = square_pad(np.ones((50, 100, 3), np.float32), 128)
    assert side == 100 and (top, left) == (25, 0)
    assert sq[:30].max() == 0 and sq[40:88].min() > 0.99


def test_weights_load_frozen(landmarker):
    for net in (landmarker.detector, landmarker.mesh):
        assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert landmarker.detect(np.zeros((64, 80), np.float32)) == []


def test_real_faces_nose_position(landmarker):
    for img in _faces(3):
        faces = landmarker.detect(img)
        assert faces and faces[0].score >= 0.75
        nose = landmarker.landmarks(img)[NOSE_TIP, :2]
        assert np.hypot(nose[0] - 97, nose[1] - 115) < 12, nose


def test_nose_error_identity_shift_and_failures(landmarker):
    img = _faces(1)[0]
    blank = np.zeros_like(img)
    df = nose_error([img, np.roll(img, 5, axis=1), blank], [img, img, blank], landmarker)
    assert df.error_px[0] == pytest.approx(0., abs=1e-9)
    assert 2.5 < df.error_px[1] < 7.5
    s = nose_error_summary(df)
    assert s['failures'] == 1 and s['images'] == 3 and np.isnan(df.error_px[2])


def test_nose_error_grows_with_blur(landmarker):
    imgs = _faces(3)
    means = [nose_error_summary(nose_error([cv2.GaussianBlur(i, (0, 0), s) if s else i for i in imgs], imgs,
                                           landmarker))['mean_px'] for s in (0, 1, 2, 4)]
    assert means[0] == 0 and all(a < b for a, b in zip(means, means[1:])), means


def test_landmark_loss():
    img = _faces(1)[0]
    assert LOSSES['landmark'] is LandmarkConsistencyLoss
    loss = LandmarkConsistencyLoss()
    hr = torch.from_numpy(img)[None, None]
    assert loss(hr, hr).item() == pytest.approx(0., abs=1e-9)
    sr = torch.roll(hr, 4, dims=-1).clone().requires_grad_(True)
    val = loss(sr, hr)
    val.backward()
    assert val.item() > 1. and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    l1 = LandmarkConsistencyLoss('l1')(sr, hr)
    assert 0 < l1.item() < val.item()
    with pytest.raises(ValueError, match="'l1', 'l2'"): LandmarkConsistencyLoss('huber')
    total = WeightedLoss({'l1': 1.0, 'landmark': 0.01})(sr, hr)
    assert total.item() > 0.01 * val.item() * 0.99
