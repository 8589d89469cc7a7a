"Integration tests of tisr.data on small fixtures written here (and on the shared real data when TISR_DATA is set)."
import json, warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tisr.core import env_dir, read_image
from tisr import data as D
from tisr import degrade as G


def write_png(path, h=40, w=48, seed=0, dtype=np.uint8):
    "A small random smooth test image at `path` (8- or 16-bit)."
    r = np.random.default_rng(seed)
    x = cv2.GaussianBlur(r.random((h, w)), (0, 0), 2)
    x = (x - x.min()) / (np.ptp(x) + 1e-9)
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.round(x * np.iinfo(dtype).max).astype(dtype))
    return path


def coord_image(path, h, w):
    "A 16-bit image whose value encodes its pixel position: v = 200 * y + x."
    yy, xx = np.mgrid[:h, :w]
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (200 * yy + xx).astype(np.uint16))
    return path


# ---------------------------------------------------------------- fixtures in the real layouts

@pytest.fixture
def puj(tmp_path):
    "faces_lwir/PUJ_T360/registered-like: S01_011adsgreg.png ... 5 subjects x 3 images."
    root = tmp_path/'faces_lwir'/'PUJ_T360'/'registered'
    for s in range(1, 6):
        for k in range(3): write_png(root/f'S{s:02d}_0{k}{k + 1}adsgreg.png', seed=10 * s + k)
    return root


@pytest.fixture
def roadscene(tmp_path):
    "roadscene/infrared-like frame names: 3 sequences of neighbouring frames."
    root = tmp_path/'roadscene'/'infrared'
    for stem in ('FLIR_00006', 'FLIR_00018', 'FLIR_00060', 'FLIR_00122', 'FLIR_00188', 'FLIR_04208', 'FLIR_04215',
                 'FLIR_video_03894', 'FLIR_video_03850', 'FLIR_video_04111'):
        write_png(root/f'{stem}.png', 32, 40, seed=len(stem))
    return root


def write_sftl54(root, subjects=(('train', ('1', '2', '3')), ('val', ('101',)), ('test', ('121', '122'))), n=2):
    "SF-TL54 official layout (scaled down): gray/<split>/images + json (labelme), rgb/<split>."
    r = np.random.default_rng(0)
    for split, subs in subjects:
        for s in subs:
            for k in range(n):
                stem = f'{s}_1_2_{k + 1}_{30 + k}_1'
                write_png(root/'gray'/split/'images'/f'{stem}.png', 58, 77, seed=k)
                write_png(root/'rgb'/split/f'{stem}.png', 58, 77, seed=k + 7)
                pts = r.uniform([25, 15], [50, 45], (54, 2))
                shapes = [{'label': 'face', 'points': [[20, 10], [55, 50]], 'shape_type': 'rectangle'}]
                shapes += [{'label': f'{i:02d}', 'points': [p.tolist()], 'shape_type': 'point'} for i, p in enumerate(pts)]
                (root/'gray'/split/'json').mkdir(parents=True, exist_ok=True)
                (root/'gray'/split/'json'/f'{stem}.json').write_text(json.dumps({'shapes': shapes}))
    return root


def write_thermeval(root, frames=(6, 3), categories=True):
    "ThermEval-D-like COCO tree: images/*.png (JSON says .jpg), Annotations/annotations_{1,2}.json."
    cats = [{'id': 0, 'name': 'Person'}, {'id': 1, 'name': 'Forehead'}, {'id': 3, 'name': 'Nose'}]
    aid, fid = 0, 0
    for pool, n in enumerate(frames, 1):
        images, anns = [], []
        for _ in range(n):
            fid += 1
            name = f'img_{fid * 41:05d}.jpg'
            write_png(root/'images'/name.replace('.jpg', '.png'), 64, 48, seed=fid)
            images.append({'id': fid, 'file_name': name})
            # two people, one nose each; a nose outside both people; a big person box containing a small one
            for bbox, cat in (([2, 4, 20, 50], 0), ([0, 0, 48, 64], 0), ([24, 6, 22, 40], 0),
                              ([10, 12, 4, 3], 3), ([30, 10, 4, 3], 3)):
                aid += 1
                anns.append({'id': aid, 'image_id': fid, 'category_id': cat, 'bbox': bbox})
        d = {'images': images, 'annotations': anns}
        if categories: d['categories'] = cats
        (root/'Annotations').mkdir(parents=True, exist_ok=True)
        (root/'Annotations'/f'annotations_{pool}.json').write_text(json.dumps(d))
    return root


def write_pbvs(root, splits=('train', 'validation'), n=4, guide=True):
    "PBVS TISR-like: <split>/{hr, lr_x4, lr_x8, visible}, stems equal."
    for split in splits:
        for k in range(n):
            stem = f'{k:04d}'
            write_png(root/split/'hr'/f'{stem}.png', 48, 64, seed=k)
            write_png(root/split/'lr_x4'/f'{stem}.png', 12, 16, seed=k + 1)
            write_png(root/split/'lr_x8'/f'{stem}.png', 6, 8, seed=k + 2)
            if guide: write_png(root/split/'visible'/f'{stem}.jpg', 48, 64, seed=k + 3)
    return root


# ---------------------------------------------------------------- items and registries

def test_item_json_round_trip(tmp_path):
    it = D.Item(tmp_path/'a.png', 'd', 'S1', box=(1, 2, 3, 4), guide=tmp_path/'g.png', lr_path=None, meta={'pool': 'p'})
    back = D.Item.from_dict(json.loads(json.dumps(it.to_dict())))
    assert back == it and back.box == (1.0, 2.0, 3.0, 4.0) and isinstance(back.path, str)
    with pytest.raises(ValueError, match='x1 > x0'): D.Item('a.png', 'd', 's', box=(3, 0, 1, 5))


def test_registries_reject_duplicates_and_list_names():
    with pytest.raises(ValueError, match='already registered'): D.register_source('folder')(lambda root: [])
    with pytest.raises(ValueError, match='already registered'): G.register_degradation('area')(lambda hr, s, r: hr)
    with pytest.raises(ValueError, match='valid: folder, iisr, pairs, pbvs, sftl54, thermeval'): D.get_source('coco')
    with pytest.raises(ValueError, match='valid: area, cv2-cubic'): G.get_degradation('matlab')


# ---------------------------------------------------------------- folder and subject rules

def test_folder_prefix_id_subjects(puj):
    items = D.scan_folder(puj)
    assert len(items) == 15 and items[0].dataset == 'PUJ_T360/registered'
    assert sorted({i.subject for i in items}) == [f'S{s:02d}' for s in range(1, 6)]
    assert {i.meta['subject_rule'] for i in items} == {'prefix-id'}


def test_folder_und_names_and_regex(tmp_path):
    for stem in ('02463d341adjsgreg', '02463d348adjsgreg', '04200d48adjsgreg', '04201d223adjsgreg'):
        write_png(tmp_path/'und'/f'{stem}.png')
    assert [i.subject for i in D.scan_folder(tmp_path/'und')] == ['02463', '02463', '04200', '04201']
    items = D.scan_folder(tmp_path/'und', subject_re=r'd(\d)', name='und')
    assert [i.subject for i in items] == ['3', '3', '4', '2'] and items[0].dataset == 'und'
    with pytest.raises(ValueError, match='exactly one group'): D.scan_folder(tmp_path/'und', subject_re=r'\d+')


def test_folder_frame_buckets_keep_neighbours_together(roadscene):
    items = D.scan_folder(roadscene)
    sub = {Path(i.path).stem: i.subject for i in items}
    assert items[0].meta['subject_rule'] == 'frame-bucket-100'
    assert sub['FLIR_00006'] == sub['FLIR_00018'] == sub['FLIR_00060'] == 'FLIR_00000-00099'
    assert sub['FLIR_00122'] == sub['FLIR_00188'] != sub['FLIR_00060']
    assert sub['FLIR_video_03894'] == sub['FLIR_video_03850'] != sub['FLIR_video_04111']
    assert D.scan_folder(roadscene, bucket=1000)[0].meta['subject_rule'] == 'frame-bucket-1000'


def test_folder_per_image_recursive_and_errors(tmp_path):
    for stem in ('carLight', 'fight', 'kettle'): write_png(tmp_path/'vifb'/'sub'/f'{stem}.jpg')
    write_png(tmp_path/'vifb'/'.ipynb_checkpoints'/'fight-checkpoint.jpg')
    items = D.scan_folder(tmp_path/'vifb')
    assert [i.subject for i in items] == ['carLight', 'fight', 'kettle'] and items[0].meta['subject_rule'] == 'per-image'
    with pytest.raises(FileNotFoundError, match='no image files'): D.scan_folder(tmp_path/'vifb', recursive=False)
    with pytest.raises(FileNotFoundError, match='missing: no such dataset folder'): D.scan_folder(tmp_path/'missing')


# ---------------------------------------------------------------- paired layouts

def test_pairs_match_stems_strict_and_lenient(tmp_path):
    for d in ('ir', 'vi'):
        for k in ('01', '02', 'fgan_5', 'pia_05'): write_png(tmp_path/'tno'/d/f'{k}.png')
    write_png(tmp_path/'tno'/'vi'/'pia_18.png')
    with pytest.raises(ValueError, match=r"1 only in .*vi \(e.g. \['pia_18'\]\)"): D.scan_pairs(tmp_path/'tno')
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        items = D.scan_pairs(tmp_path/'tno', strict=False)
    assert len(items) == 4 and all(i.meta['unmatched_dropped'] == 1 for i in items)
    assert all(Path(i.guide).parent.name == 'vi' and Path(i.guide).stem == Path(i.path).stem for i in items)
    with pytest.raises(FileNotFoundError, match="visible folder 'vis/'"): D.scan_pairs(tmp_path/'tno', vi='vis')


def test_sftl54_official_layout(tmp_path):
    items = D.scan_sftl54(write_sftl54(tmp_path/'sftl'))
    assert len(items) == 12
    assert sorted({i.subject for i in items}) == ['1', '101', '121', '122', '2', '3']
    for it in items:
        lm = np.array(it.meta['landmarks'])
        assert lm.shape == (54, 2)
        np.testing.assert_allclose(it.box, [*lm.min(0), *lm.max(0)], atol=0.01)
        assert it.meta['pool_splits'] == [it.meta['split']]
        assert Path(it.guide).name == Path(it.path).name and 'rgb' in Path(it.guide).parts
    assert {i.meta['split'] for i in items if i.subject == '101'} == {'val'}
    assert D.scan_sftl54(tmp_path/'sftl', box_from='face')[0].box == (20, 10, 55, 50)
    assert D.scan_sftl54(tmp_path/'sftl'/'gray', official_splits=False)[0].meta.get('pool') is None
    with pytest.raises(ValueError, match="valid: 'landmarks', 'face'"): D.scan_sftl54(tmp_path/'sftl', box_from='chin')
    (tmp_path/'sftl'/'gray'/'test'/'json'/'121_1_2_1_30_1.json').unlink()
    with pytest.raises(FileNotFoundError, match=r"no annotation for 1 images, e.g. \['121_1_2_1_30_1.json'\]"):
        D.scan_sftl54(tmp_path/'sftl')


def test_sftl54_jsonl_layout_of_source_1(tmp_path):
    root = tmp_path/'sftl'/'gray'
    for split, sub in (('train', '7'), ('val', '105'), ('test', '130')):
        write_png(root/split/'imgs'/f'{sub}_1_1_1_5_1.png', 58, 77)
        rec = {'image': f'imgs/{sub}_1_1_1_5_1.png', 'chin': [[20, 30], [40, 50]], 'left_eyebrow': [[25, 12], [30, 11]]}
        (root/split/'labels.jsonl').write_text(json.dumps(rec) + '\n')
    items = D.scan_sftl54(tmp_path/'sftl')
    assert [i.subject for i in items] == ['130', '7', '105'] and items[0].box == (20, 11, 40, 50)
    assert items[0].guide is None


def test_thermeval_person_nose_pairs_and_pools(tmp_path):
    root = write_thermeval(tmp_path/'te')
    items = D.scan_thermeval(root)
    assert len(items) == 2 * (6 + 3)
    # the smallest person containing the nose, not the whole-frame box
    assert [i.box for i in items[:2]] == [(2, 4, 22, 54), (24, 6, 46, 46)]
    assert items[0].meta['nose'] == [12, 13.5] and Path(items[0].path).suffix == '.png'
    assert Counter(i.meta['pool'] for i in items) == {'annotations_1': 12, 'annotations_2': 6}
    assert {tuple(i.meta['pool_splits']) for i in items if i.meta['pool'] == 'annotations_2'} == {('test',)}
    assert items[0].subject.startswith('annotations_1/')
    custom = D.scan_thermeval(root, pools={'annotations_2': 'val'})
    assert {i.meta['pool'] for i in custom} == {'annotations_2'} and custom[0].meta['pool_splits'] == ['val']
    with pytest.raises(ValueError, match='valid: train, val, test'): D.scan_thermeval(root, pools={'annotations_1': 'dev'})


def test_thermeval_without_categories_uses_source_ids_and_names_missing_images(tmp_path):
    root = write_thermeval(tmp_path/'te', frames=(2,), categories=False)
    items = D.scan_thermeval(root)
    assert len(items) == 4 and items[0].meta['pool_splits'] == ['train', 'val', 'test']
    (root/'images'/'img_00041.png').unlink()
    with pytest.raises(FileNotFoundError, match="missing, e.g. \\['img_00041.jpg'\\]"): D.scan_thermeval(root)
    assert len(D.scan_thermeval(root, strict=False)) == 2


def test_pbvs_tracks_and_iisr(tmp_path):
    root = write_pbvs(tmp_path/'pbvs')
    with pytest.raises(ValueError, match='lr_x4, lr_x8; pass scale= to choose'): D.scan_pbvs(root)
    t1 = D.scan_pbvs(root, scale=4)
    assert len(t1) == 8 and all(Path(i.lr_path).parent.name == 'lr_x4' and i.guide is None for i in t1)
    assert Counter(i.meta['pool'] for i in t1) == {'train': 4, 'val': 4}
    assert t1[0].subject.startswith('train/') and t1[0].dataset == 'pbvs-track1'
    t2 = D.scan_pbvs(root, track=2, scale=8)
    assert all(Path(i.guide).stem == Path(i.path).stem and Path(i.guide).suffix == '.jpg' for i in t2)
    with pytest.raises(FileNotFoundError, match='no visible guide folder'): D.scan_pbvs(write_pbvs(tmp_path/'p2', guide=False), track=2, scale=8)
    write_pbvs(tmp_path/'p3', splits=('eval',))
    with pytest.raises(ValueError, match="'eval' is not one of train, val, test"): D.scan_pbvs(tmp_path/'p3', scale=4)
    assert len(D.scan_pbvs(tmp_path/'p3', scale=4, official_splits=False)) == 4
    for k in range(3):
        write_png(tmp_path/'iisr'/'HR'/f'{k:04d}.png', 48, 64, seed=k)
        write_png(tmp_path/'iisr'/'LR'/f'{k:04d}.png', 12, 16, seed=k)
    ii = D.scan_iisr(tmp_path/'iisr', scale=4)
    assert len(ii) == 3 and all(Path(i.lr_path).parent.name == 'LR' for i in ii) and ii[0].meta['scale'] == 4
    with pytest.raises(FileNotFoundError, match=r'no HR folder \(hr/, gt/\)'): D.scan_iisr(tmp_path/'pbvs'/'train'/'hr')


# ---------------------------------------------------------------- specs

def test_parse_data_spec_forms(tmp_path, puj):
    assert D.parse_data_spec(f'sftl54:{tmp_path}') == ('sftl54', str(tmp_path), {})
    assert D.parse_data_spec(puj) == ('folder', str(puj), {})
    assert D.parse_data_spec({'layout': 'pbvs', 'path': 'x', 'track': 2}) == ('pbvs', 'x', {'track': 2})
    assert D.parse_data_spec({'path': 'x'})[0] == 'folder'
    with pytest.raises(ValueError, match="unknown dataset layout 'cidis'"): D.parse_data_spec('cidis:/data')
    with pytest.raises(TypeError, match='str, Path or dict'): D.parse_data_spec(3)
    with pytest.raises(ValueError, match=r"no options \['trak'\]"): D.scan_spec({'layout': 'pbvs', 'path': tmp_path, 'trak': 2})
    items = D.scan_spec({'path': str(puj), 'bits': 8})
    assert items[0].meta['rel'] == 'S01_001adsgreg.png' and items[0].meta['bits'] == 8


# ---------------------------------------------------------------- manifest

def test_manifest_is_subject_disjoint_and_near_fractions(tmp_path):
    root = tmp_path/'many'
    r = np.random.default_rng(0)
    for s in range(30):
        for k in range(int(r.integers(1, 6))): write_png(root/f'P{s:03d}_{k}x.png', 8, 8, seed=k)
    specs = [{'path': str(root), 'name': 'many'}, f'sftl54:{write_sftl54(tmp_path/"sftl")}', {'layout': 'thermeval', 'path': str(write_thermeval(tmp_path/'te'))}]
    for seed in range(5):
        m = D.build_manifest(specs, seed=seed)
        seen = {}
        for it, s in zip(m.items, m.splits):
            assert seen.setdefault((it.dataset, it.subject), s) == s
        many = m.summary().loc['many']
        assert all(many[('subjects', s)] >= 1 for s in D.SPLITS)
        assert abs(many[('images', 'train')] / many['images'].sum() - 0.7) < 0.1
        # pools: SF-TL54 keeps its official splits, ThermEval file 2 is the test set
        assert all(it.meta['split'] == s for it, s in zip(m.items, m.splits) if it.dataset == 'sftl54')
        assert {it.meta['pool'] for it in m.split('test') if it.dataset == 'thermeval'} == {'annotations_2'}
        assert {it.meta['pool'] for it in m.split('train') + m.split('val') if it.dataset == 'thermeval'} == {'annotations_1'}
    assert m.datasets == ['many', 'sftl54', 'thermeval']


def test_manifest_hash_save_load(tmp_path, puj, roadscene):
    m = D.build_manifest([str(puj), str(roadscene)], seed=3)
    assert D.build_manifest([str(puj), str(roadscene)], seed=3).hash == m.hash
    assert D.build_manifest([str(puj), str(roadscene)], seed=4).hash != m.hash
    # adding a dataset leaves the others' splits alone
    m1 = D.build_manifest([str(puj)], seed=3)
    assert [s for it, s in zip(m.items, m.splits) if it.dataset == 'PUJ_T360/registered'] == m1.splits
    path = m.save(tmp_path/'out'/'manifest.json')
    d = json.loads(path.read_text())
    assert d['hash'] == m.hash and d['seed'] == 3 and d['fractions'] == [0.7, 0.15, 0.15]
    assert d['subject_rules'] == {'PUJ_T360/registered': ['prefix-id'], 'roadscene/infrared': ['frame-bucket-100']}
    assert sum(c['images'] for c in d['counts']['PUJ_T360/registered'].values()) == 15
    back = D.Manifest.load(path)
    assert back.hash == m.hash and back.splits == m.splits and back.items == m.items
    d['items'][0]['subject'] = 'S99'
    (tmp_path/'bad.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match='do not match the stored hash'): D.Manifest.load(tmp_path/'bad.json')


def test_manifest_hash_ignores_data_location(tmp_path, puj):
    import shutil
    shutil.copytree(puj, tmp_path/'elsewhere'/'PUJ_T360'/'registered')
    assert D.build_manifest(str(tmp_path/'elsewhere'/'PUJ_T360'/'registered')).hash == D.build_manifest(str(puj)).hash


def test_manifest_too_few_subjects_and_overrides(tmp_path):
    for stem in ('A1_x', 'A1_y', 'B2_x'): write_png(tmp_path/'two'/f'{stem}.png')
    with pytest.raises(ValueError, match=r"dataset '.*two'.*2 subjects .* for 3 splits"): D.build_manifest(str(tmp_path/'two'))
    m = D.build_manifest({'path': str(tmp_path/'two'), 'fractions': [0.5, 0, 0.5]})
    assert sorted(set(m.splits)) == ['test', 'train']
    m = D.build_manifest(str(tmp_path/'two'), fractions={'*': (1, 0, 0)})
    assert set(m.splits) == {'train'}
    with pytest.raises(ValueError, match='non-negative'): D.build_manifest(str(tmp_path/'two'), fractions=(1, -1, 0))
    with pytest.raises(ValueError, match='valid: train, val, test'): m.split('dev')


def test_summary_counts(puj, roadscene):
    m = D.build_manifest([str(puj), str(roadscene)])
    s = m.summary()
    assert list(s.index) == ['PUJ_T360/registered', 'roadscene/infrared', 'all']
    assert s.loc['all', 'images'].sum() == len(m) == 25
    assert s.loc['PUJ_T360/registered', 'subjects'].sum() == 5
    for split in D.SPLITS: assert s.loc['all', ('images', split)] == len(m.split(split))


# ---------------------------------------------------------------- crop policy and LR makers

def test_load_hr_box_crop_is_centred_square(tmp_path):
    p = coord_image(tmp_path/'c.png', 120, 160)
    it = D.Item(p, 'd', 's', box=(60, 40, 100, 80), meta={'bits': 16})   # 40x40 box centred at (80, 60)
    x = read_image(p, bits=16)[0]
    l, t, r, b = D.square_window(it.box, 120, 160)
    assert (r - l, b - t) == (46, 46) and ((l + r) / 2, (t + b) / 2) == (80, 60)
    hr = D.load_hr(it)
    assert hr.shape == (192, 192) and hr.dtype == np.float32
    # upscaled with INTER_CUBIC from exactly that window
    ref = np.clip(cv2.resize(x[t:b, l:r], (192, 192), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(hr, ref, atol=1e-6)
    # a box at the border stays square and inside the image
    assert D.square_window((0, 100, 30, 120), 120, 160) == (0, 86, 34, 120)


def test_load_hr_bit_depths(tmp_path):
    write_png(tmp_path/'r16'/'f_001.png', dtype=np.uint16)
    assert D.load_hr(D.scan_spec({'path': str(tmp_path/'r16')})[0]).max() == pytest.approx(1.0)
    with pytest.raises(Exception, match='f_001.png: 16-bit image where 8-bit was declared'):
        D.load_hr(D.scan_spec({'path': str(tmp_path/'r16'), 'bits': 8})[0])
    with pytest.raises(Exception, match='nothere.png: no such file'): D.load_hr(D.Item(tmp_path/'nothere.png', 'd', 's'))


def test_degradations_match_references():
    rng = np.random.default_rng(0)
    hr = rng.random((24, 32)).astype(np.float32)
    np.testing.assert_allclose(G.area_down(hr, 4, rng), hr.reshape(6, 4, 8, 4).mean((1, 3)), atol=1e-6)
    t = F.interpolate(torch.from_numpy(hr)[None, None], scale_factor=0.25, mode='bicubic', align_corners=False)
    np.testing.assert_allclose(G.get_degradation('torch-bicubic')(hr, 4, rng), t[0, 0].clamp(0, 1).numpy(), atol=1e-6)
    for name in ('cv2-cubic', 'linear', 'nearest'):
        lr = G.get_degradation(name)(hr, 4, rng)
        assert lr.shape == (6, 8) and lr.dtype == np.float32 and 0 <= lr.min() and lr.max() <= 1
    assert not np.allclose(G.get_degradation('cv2-cubic')(hr, 4, rng), G.area_down(hr, 4))
    with pytest.raises(ValueError, match='not a multiple of scale 3'): G.area_down(hr[:23], 3)


# ---------------------------------------------------------------- paired datasets

@pytest.fixture
def manifest(tmp_path, puj):
    sftl, te = write_sftl54(tmp_path/'sftl'), write_thermeval(tmp_path/'te')
    return D.build_manifest([str(puj), f'sftl54:{sftl}', {'layout': 'thermeval', 'path': str(te)}], seed=0)


def test_train_patches_pairs_and_reproducibility(manifest):
    ds = D.PairedDataset(manifest.split('train'), scale=4, patch=32, augment=True, seed=1)
    s = ds[0]
    assert s['hr'].shape == (1, 32, 32) and s['lr'].shape == (1, 8, 8) and s['hr'].dtype == torch.float32
    np.testing.assert_allclose(s['lr'][0].numpy(), G.area_down(s['hr'][0].numpy(), 4), atol=1e-6)
    assert torch.equal(ds[0]['hr'], s['hr'])
    seen = set()
    for e in range(4):
        ds.set_epoch(e); seen.add(ds[0]['hr'].sum().item())
    assert len(seen) > 1
    ds.set_epoch(0); assert torch.equal(ds[0]['hr'], s['hr'])
    assert not torch.equal(D.PairedDataset(manifest.split('train'), scale=4, patch=32, seed=2)[0]['hr'], s['hr'])
    with pytest.raises(ValueError, match='patch 30 is not a multiple of scale 4'): D.PairedDataset(manifest.split('train'), patch=30)
    with pytest.raises(ValueError, match='no items'): D.PairedDataset([])


def test_small_images_are_named_not_padded(tmp_path):
    "An image smaller than the training patch used to be reflect-padded silently; now it is an error naming it."
    write_png(tmp_path/'small'/'a.png', 20, 28)
    with pytest.raises(ValueError, match=r'smaller than the 32x32 training patch, e\.g\. .*small/a\.png \(shortest side 20 px\); .*patch: 20'):
        D.PairedDataset(D.scan_folder(tmp_path/'small'), scale=4, patch=32)
    assert D.PairedDataset(D.scan_folder(tmp_path/'small'), scale=4, patch=20)[0]['hr'].shape == (1, 20, 20)


def test_augment_applies_the_same_transform(tmp_path):
    p = coord_image(tmp_path/'aug'/'c.png', 32, 32)
    it = D.Item(p, 'd', 's', meta={'bits': 16})
    outs = set()
    for seed in range(12):
        s = D.PairedDataset([it], scale=4, patch=32, degradation='nearest', augment=True, seed=seed)[0]
        np.testing.assert_allclose(G.area_down(s['hr'][0].numpy(), 4),
                                   D.PairedDataset([it], scale=4, patch=32, augment=True, seed=seed)[0]['lr'][0].numpy(), atol=1e-6)
        outs.add(tuple(s['hr'][0, 0, :2].tolist()))
    assert len(outs) >= 4   # several distinct rotations/flips occurred


def test_eval_whole_images_max_size_and_collate(manifest):
    ev = D.PairedDataset(manifest.split('test'), scale=4, train=False)
    sizes = Counter(tuple(ev[i]['hr'].shape) for i in range(len(ev)))
    assert set(sizes) <= {(1, 40, 48), (1, 192, 192)} and len(sizes) == 2
    for i in range(len(ev)):
        s = ev[i]
        assert s['lr'].shape[1] * 4 == s['hr'].shape[1] and s['index'] == i
        np.testing.assert_allclose(s['lr'][0].numpy(), G.area_down(s['hr'][0].numpy(), 4), atol=1e-6)
    small = D.PairedDataset(manifest.split('test'), scale=4, train=False, max_size=30)
    assert {tuple(small[i]['hr'].shape) for i in range(len(small))} == {(1, 28, 28)}
    dl = torch.utils.data.DataLoader(ev, batch_size=1, collate_fn=D.collate_pairs)
    b = next(iter(dl))
    assert b['hr'].ndim == 4 and b['path'] == [ev.items[0].path] and b['index'].tolist() == [0]
    with pytest.raises(ValueError, match='batch_size=1'):
        D.collate_pairs([ev[i] for i in range(len(ev))])


def test_captured_lr_is_used_not_synthesised(tmp_path):
    items = D.scan_pbvs(write_pbvs(tmp_path/'pbvs'), scale=4)
    ev = D.PairedDataset(items, scale=4, train=False, degradation='nearest')
    s = ev[0]
    np.testing.assert_array_equal(s['lr'][0].numpy(), read_image(items[0].lr_path)[0])
    np.testing.assert_array_equal(s['hr'][0].numpy(), read_image(items[0].path)[0])
    half = D.PairedDataset(items, scale=4, train=False, max_size=32)[0]
    assert half['hr'].shape == (1, 32, 32) and half['lr'].shape == (1, 8, 8)
    np.testing.assert_array_equal(half['lr'][0].numpy(), read_image(items[0].lr_path)[0][2:10, 4:12])
    np.testing.assert_array_equal(half['hr'][0].numpy(), read_image(items[0].path)[0][8:40, 16:48])
    tr = D.PairedDataset(items, scale=4, patch=16, seed=0)
    hr_full, lr_full = read_image(items[0].path)[0], read_image(items[0].lr_path)[0]
    s = tr[0]
    # the LR patch sits at the same place in the captured LR as the HR patch (/4) in the HR
    lr_p, hr_p = s['lr'][0].numpy(), s['hr'][0].numpy()
    pos = [(y, x) for y in range(0, 13) for x in range(0, 17) if np.array_equal(lr_full[y:y + 4, x:x + 4], lr_p)]
    assert any(np.array_equal(hr_full[y * 4:y * 4 + 16, x * 4:x * 4 + 16], hr_p) for y, x in pos)
    with pytest.raises(ValueError, match='is not 8x its LR'): D.PairedDataset(items, scale=8, train=False)


_NOISE = 'test-noise'
if _NOISE not in G.DEGRADATIONS:
    @G.register_degradation(_NOISE)
    def _noise(hr, scale, rng):
        lr = G.area_down(hr, scale)
        return np.clip(lr + rng.normal(0, 0.05, lr.shape), 0, 1).astype(np.float32)


def test_stochastic_degradation_is_reproducible_with_workers(manifest):
    ds = D.PairedDataset(manifest.split('train'), scale=4, patch=32, degradation=_NOISE, augment=True, seed=0)
    ds.set_epoch(3)
    def lrs(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=D.collate_pairs)
        return torch.cat([b['lr'] for b in dl])
    a = lrs(0)
    assert torch.equal(a, lrs(2))
    ev1, ev2 = (D.PairedDataset(manifest.split('val'), degradation=_NOISE, train=False, seed=9) for _ in range(2))
    assert torch.equal(ev1[0]['lr'], ev2[0]['lr'])
    assert (ev1[0]['lr'][0] - torch.from_numpy(G.area_down(ev1[0]['hr'][0].numpy(), 4))).abs().max() > 0.01


# ---------------------------------------------------------------- real data

def test_real_data_manifest():
    root = env_dir('TISR_DATA')
    if root is None: pytest.skip('set TISR_DATA to a folder laid out like /work/shared/data to run on real data')
    puj, road = root/'thermal'/'faces_lwir'/'PUJ_T360'/'registered', root/'thermal'/'roadscene'/'infrared'
    m = D.build_manifest([str(puj), str(road)], seed=0)
    D.check_disjoint(m.items, m.splits)
    assert m.subject_rules == {'PUJ_T360/registered': ['prefix-id'], 'roadscene/infrared': ['frame-bucket-100']}
    puj_subjects = {it.subject for it in m.items if it.dataset == 'PUJ_T360/registered'}
    assert len(puj_subjects) == 40 and all(s[0] == 'S' and s[1:].isdigit() for s in puj_subjects)
    road_subjects = {it.subject for it in m.items if it.dataset == 'roadscene/infrared'}
    assert 1 < len(road_subjects) < 221 and 'FLIR_00000-00099' in road_subjects
    for ds in m.datasets:
        assert all(m.counts[ds][s]['subjects'] >= 1 for s in D.SPLITS)
